"""Tokenize and count tokens for the web process, without torch or transformers.

``tokenize`` asks a worker of the model (``inference.tokenize`` on its queue) for the tokens and
the top next-token probabilities, and caches the answer, so a form that calls it while the user
types costs one worker round trip per distinct prompt.

``count_tokens`` lets a generate request be refused with a 400 when its prompt is too long:
from the tokenize cache when the page has already asked, else from the model's
``tokenizer.json`` with the light ``tokenizers`` package when the model's files are on this
machine (local installs). Otherwise it returns None and the worker checks (the job then fails
with the same message).
"""

from __future__ import annotations

import functools
import hashlib
import logging
from pathlib import Path
from typing import Any

from celery.exceptions import TimeoutError as CeleryTimeout
from django.conf import settings
from django.core.cache import cache

from contract.params import TokenizeParams
from core.celery import app
from features.models import LanguageModel
from jobs.dispatch import queue_for

log = logging.getLogger(__name__)

TOKENIZE_TASK = "inference.tokenize"


class WorkerUnavailable(Exception):
    """No worker of this model answered in time."""


def _key(kind: str, model: LanguageModel, *parts: object) -> str:
    text = "\x00".join(str(p) for p in (model.pk, model.source, *parts))
    return f"jobs:{kind}:{hashlib.sha256(text.encode()).hexdigest()}"


def tokenize(
    model: LanguageModel, prompt: str, top_k: int = TokenizeParams.top_k
) -> dict[str, Any]:
    """``{"tokens": [{"id", "text"}], "n_tokens", "top": [{"id", "token", "prob", "cumulative"}]}``
    or ``{"error": message, "field": name or None}`` when the worker could not answer (a field
    when the request is at fault, e.g. a prompt the model cannot take)."""
    key = _key("tokenize", model, top_k, prompt)
    cached: dict[str, Any] | None = cache.get(key)
    if cached is not None:
        return cached
    timeout = settings.JOBS_TOKENIZE_TIMEOUT_S
    # expires: a message nobody took in time is dropped, not run after the caller gave up.
    result = app.send_task(
        TOKENIZE_TASK, args=[model.pk, prompt, top_k], queue=queue_for(model), expires=timeout
    )
    try:
        body: dict[str, Any] = result.get(timeout=timeout, propagate=False)
    except CeleryTimeout:
        raise WorkerUnavailable(
            f"no worker for {model.slug} answered within {timeout} s; it may be busy with a "
            "graph, try again in a moment"
        ) from None
    finally:
        result.forget()
    if not isinstance(body, dict):
        log.warning("tokenize for %s failed in the worker: %r", model.slug, body)
        raise WorkerUnavailable(f"the worker for {model.slug} could not tokenize this prompt")
    if "error" not in body:
        cache.set(key, body, settings.JOBS_TOKENIZE_CACHE_S)
        cache.set(_key("count", model, prompt), body["n_tokens"], settings.JOBS_TOKENIZE_CACHE_S)
    return body


def count_tokens(model: LanguageModel, prompt: str) -> int | None:
    """Tokens the engine will see (with the prepended special token), or None when unknown here."""
    cached: int | None = cache.get(_key("count", model, prompt))
    if cached is not None:
        return cached
    tokenizer = _local_tokenizer(model.source)
    if tokenizer is None:
        return None
    try:
        ids = tokenizer.encode(prompt, add_special_tokens=False).ids
    except Exception:  # a tokenizer that chokes on odd input: leave it to the worker
        return None
    return len(ids) + 1


def text_tokens(model: LanguageModel, text: str) -> list[tuple[int, str]] | None:
    """The (id, text) tokens ``text`` becomes for ``model`` with no special token, as the worker
    turns a target into ids; None when unknown here. From the model's local ``tokenizer.json``,
    else from the tokenize cache (the generate page tokenizes its targets before submitting);
    never a worker round trip, so queueing a job does not wait on a busy worker."""
    tokenizer = _local_tokenizer(model.source)
    if tokenizer is not None:
        try:
            ids = tokenizer.encode(text, add_special_tokens=False).ids
            return [(int(i), str(tokenizer.decode([i]))) for i in ids]
        except Exception:  # a tokenizer that chokes on odd input: leave it to the worker
            return None
    cached: dict[str, Any] | None = cache.get(_key("tokenize", model, TokenizeParams.top_k, text))
    if not cached or "tokens" not in cached:
        return None
    return [(int(t["id"]), str(t["text"])) for t in cached["tokens"][1:]]


@functools.lru_cache(maxsize=8)
def _local_tokenizer(source: str) -> Any:
    path = Path(source)
    if not path.is_absolute():
        path = Path(settings.BASE_DIR) / path
    file = path / "tokenizer.json"
    if not source or not file.is_file():
        return None
    try:
        from tokenizers import Tokenizer
    except ImportError:  # a web image without the worker extras
        return None
    try:
        return Tokenizer.from_file(str(file))
    except Exception:
        log.warning("cannot read %s; prompt lengths are checked by the worker", file)
        return None
