"""No server path in a stored graph's metadata.

The engine names the model by what it loaded (``info.model``: the model's folder), and files from
other tools can carry paths of the machine that made them (``info.transcoder_set``, ``scan``,
``transcoder_list``, a set's ``neuronpedia_source_set``). An artifact is served and exported as
its stored bytes, so the metadata is cleaned once, when it is stored (``store_graph``; an
import cleans it before it names a model or set from it, so no path becomes a slug), and the
graphs stored before that rule are rewritten by migration ``0003_scrub_server_paths`` through
``rewrite_stored``. Serving stays a byte copy with no work per request.

A path becomes its last component (``/srv/models/gemma-2-2b`` -> ``gemma-2-2b``): the name stays
readable and the server's layout is gone. URLs (``https://``, ``hf://``) and relative names are
kept. The prompt and its tokens are the user's text and are never touched.
"""

from __future__ import annotations

import functools
import gzip
import json
from typing import Any

from django.core.files.storage import default_storage
from django.db import models, transaction

from contract.server_paths import public_name
from graphs import artifacts

_USER_TEXT = frozenset({"prompt", "prompt_tokens"})


def _scrubbed(value: Any) -> Any:
    if isinstance(value, str):
        return public_name(value)
    if isinstance(value, list):
        return [_scrubbed(item) for item in value]
    if isinstance(value, dict):
        return {key: _scrubbed(item) for key, item in value.items()}
    return value


def without_paths(metadata: dict[str, Any]) -> dict[str, Any]:
    """The metadata with every server path cut to its last component (a new dict)."""
    return {
        key: value if key in _USER_TEXT else _scrubbed(value) for key, value in metadata.items()
    }


def scrub_metadata(metadata: dict[str, Any], *, model_slug: str) -> dict[str, Any]:
    """The metadata as it is stored: no server path, and ``info.model`` the catalogue's slug."""
    clean = without_paths(metadata)
    info = clean.get("info")
    if isinstance(info, dict) and "model" in info:
        clean["info"] = {**info, "model": model_slug}
    return clean


def rewrite_stored(graph_model: type[models.Model]) -> int:
    """Rewrite every stored artifact whose metadata holds a server path; returns how many.

    ``graph_model`` is the ``Graph`` class (the migration passes its historical one). Each
    cleaned graph gets a new artifact file (an artifact is never rewritten in place: the web's
    caches key on name and hash) and its row points at it. Call inside a transaction: the old
    files are deleted only once it commits, and the new ones at once if anything fails, so a
    row never points at a missing or half-written file.
    """
    written: list[str] = []
    rewritten = 0
    try:
        graphs = graph_model.objects.select_related("model").order_by("pk")  # type: ignore[attr-defined]
        for graph in graphs.iterator(chunk_size=100):
            name = graph.artifact.name
            if not name:
                continue
            try:
                with default_storage.open(name, "rb") as handle:
                    document = json.loads(gzip.decompress(handle.read()))
            except (OSError, ValueError):
                # A missing or unreadable file serves nothing to clean; it must not block the
                # upgrade of every other graph.
                continue
            metadata = document.get("metadata")
            if not isinstance(metadata, dict):
                continue
            clean = scrub_metadata(metadata, model_slug=graph.model.slug)
            if clean == metadata:
                continue
            stored = artifacts.write(
                {**document, "metadata": clean}, model_slug=graph.model.slug, slug=graph.slug
            )
            written.append(stored.name)
            graph_model.objects.filter(pk=graph.pk).update(  # type: ignore[attr-defined]
                artifact=stored.name,
                artifact_sha256=stored.sha256,
                artifact_bytes=stored.raw_bytes,
                artifact_gzip_bytes=stored.gzip_bytes,
            )
            transaction.on_commit(functools.partial(artifacts.delete, name))
            rewritten += 1
    except BaseException:
        for name in written:
            artifacts.delete(name)
        raise
    return rewritten
