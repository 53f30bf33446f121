"""The only bridge between the web side and the engine: Celery tasks in, engine calls, rows out.

Tasks are registered under explicit names (``inference.attribute``, ``inference.steer``,
``inference.tokenize``) and
the web process sends them by name, so it never imports this module. Nothing here imports torch
or the engine at module level: the worker's parent process stays free of CUDA, and each pool
child loads the engine, and the models it is asked for, on first use. A child keeps the last
``JOBS_WORKER_MODEL_CACHE`` models loaded (LRU).

Failures end as a failed job with a readable message, never as an exception that leaves the row
"running": CUDA OOM, the soft time limit, a prompt too long for the model, bad targets, model
files that do not load. A hard time limit or a killed worker leaves a stale heartbeat that the
reaper (jobs/services.py) turns into a re-queue or a failure.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from contract.params import AttributeParams, InterveneParams, SteerParams, TokenizeParams

if TYPE_CHECKING:
    from features.models import LanguageModel, TranscoderSet
    from inference.engine import ReplacementModel
    from jobs.services import Run

log = logging.getLogger(__name__)

# (model id, model source, set id, set source) -> loaded replacement model, most recent last.
_models: OrderedDict[tuple[Any, ...], ReplacementModel] = OrderedDict()
_models_lock = threading.Lock()


class JobInputError(ValueError):
    """The job's input cannot run on this model; the message is shown to the user as is."""


def _resolve(source: str) -> str:
    """A relative local path is relative to the project root; hub ids and URIs pass through."""
    if not source or source.startswith("hf://"):
        return source
    path = Path(source)
    if path.is_absolute():
        return source
    candidate = Path(settings.BASE_DIR) / path
    return str(candidate) if candidate.exists() else source


def _device() -> str:
    import torch

    if settings.JOBS_WORKER_DEVICE == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(settings.JOBS_WORKER_DEVICE)


def _configure_torch() -> None:
    """CPU threads for this process (JOBS_WORKER_TORCH_THREADS), once, before the first model.

    On a CPU worker one thread is the default: on the 2-core test machine, shared with other
    work, the demo model's graph took 86 ms with one thread and 695 ms with two.
    """
    global _torch_configured
    if _torch_configured:
        return
    import torch

    threads = settings.JOBS_WORKER_TORCH_THREADS
    if threads == 0 and _device() == "cpu":
        threads = 1
    if threads > 0:
        torch.set_num_threads(threads)
    _torch_configured = True


_torch_configured = False


def load_model(model: LanguageModel, transcoder_set: TranscoderSet) -> ReplacementModel:
    """The replacement model for (model, set), from this process's LRU cache or loaded now."""
    key = (model.pk, model.source, transcoder_set.pk, transcoder_set.source)
    with _models_lock:
        if key in _models:
            _models.move_to_end(key)
            return _models[key]
    import torch

    from inference.engine import ReplacementModel

    _configure_torch()

    dtype = getattr(torch, settings.JOBS_WORKER_DTYPE)
    loaded = ReplacementModel.load(
        _resolve(model.source), _resolve(transcoder_set.source), device=_device(), dtype=dtype
    )
    with _models_lock:
        _models[key] = loaded
        while len(_models) > settings.JOBS_WORKER_MODEL_CACHE:
            _models.popitem(last=False)
    if len(_models) >= settings.JOBS_WORKER_MODEL_CACHE:
        _free_memory()
    return loaded


def _free_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _is_oom(exc: BaseException) -> bool:
    import torch

    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


# ---------------------------------------------------------------------------------------------
# Attribution


def _target_id(rm: ReplacementModel, item: int | str, field: str) -> int:
    if isinstance(item, int):
        return item
    if rm.tokenizer is None:
        raise JobInputError(f"target.{field}: this model has no tokenizer; give token ids")
    ids = rm.tokenizer(item, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        raise JobInputError(
            f"target.{field}: {item!r} is {len(ids)} tokens for this model; give one token "
            "(or its id)"
        )
    return int(ids[0])


def _targets(rm: ReplacementModel, target: dict[str, Any] | None) -> Any:
    from inference.engine import LogitDiff

    if not target:
        return None
    if "logit_diff" in target:
        a, b = (_target_id(rm, item, "logit_diff") for item in target["logit_diff"])
        return LogitDiff(token=a, baseline=b)
    return [_target_id(rm, item, "tokens") for item in target["tokens"]]


def _attribute_document(run: Run, rm: ReplacementModel) -> dict[str, Any]:
    """Run the engine for the job and return its graph as circuit-tracer JSON."""
    from inference import engine

    job, params = run.job, AttributeParams.from_dict(run.job.params)
    try:
        tokens = rm.tokenize(params.prompt)
    except ValueError as exc:
        raise JobInputError(f"prompt: {exc}") from None
    if len(tokens) > job.model.max_prompt_tokens:
        raise JobInputError(
            f"prompt: the prompt has {len(tokens)} tokens; {job.model.slug} allows at most "
            f"{job.model.max_prompt_tokens}"
        )
    options: dict[str, Any] = {
        "max_n_logits": params.max_n_logits,
        "desired_logit_prob": params.desired_logit_prob,
        "max_feature_nodes": params.max_feature_nodes,
    }
    if params.batch_size:
        options["batch_size"] = params.batch_size
    graph = engine.attribute(
        tokens,
        rm,
        attribution_targets=_targets(rm, params.target),
        on_progress=run.progress,
        should_stop=run.should_stop,
        **options,
    )
    node_threshold, edge_threshold = params.node_threshold, params.edge_threshold
    pruned = engine.prune(graph, node_threshold=node_threshold, edge_threshold=edge_threshold)
    document: dict[str, Any] = engine.graph_to_json(
        graph,
        pruned,
        slug=params.slug or "generated",
        node_threshold=node_threshold,
        edge_threshold=edge_threshold,
        scan=job.model.slug,
    )
    # The prompt as the user typed it; the engine's copy comes from the token ids.
    document["metadata"]["prompt"] = params.prompt
    return document


def run_job(job_id: str, worker: str, soft_limit: float | None = None) -> str:
    """Claim and run one job of any kind; returns what happened (for logs and tests).

    ``soft_limit``: the soft time limit the message was sent with, for the failure message.
    """
    from jobs import events, services

    job = services.claim(job_id, worker)
    if job is None:
        return "skipped"  # redelivered, duplicate, cancelled or finished: nothing to do
    compute = _attribution if job.kind == job.Kind.ATTRIBUTION else _steering
    with services.Run(job) as run:
        outcome = _run(run, compute, soft_limit)
    events.flush()  # the last events leave before the task reports done
    if _engine_broken:
        # An import interrupted half-way (e.g. by the soft time limit) leaves torch unusable in
        # this process: exit, and the pool starts a fresh child. The job is already marked
        # failed, so the message the broker hands back is skipped.
        log.error("the engine import failed in this process; exiting so the pool replaces it")
        os._exit(70)
    return outcome


class EngineUnavailable(RuntimeError):
    """The engine (torch, transformers) could not be imported in this process."""


_engine_broken = False


def _engine() -> Any:
    global _engine_broken
    try:
        from inference import engine
    except BaseException as exc:
        _engine_broken = True
        if isinstance(exc, SoftTimeLimitExceeded):
            raise
        raise EngineUnavailable(
            f"this worker could not load the engine ({type(exc).__name__}: {exc}); "
            "try again, another worker process will take the job"
        ) from exc
    return engine


def _attribution(run: Run, rm: ReplacementModel) -> bool:
    return run.complete_attribution(_attribute_document(run, rm)) is not None


def _run(
    run: Run, compute: Callable[[Run, ReplacementModel], bool], soft_limit: float | None = None
) -> str:
    """Load the job's model and ``compute`` its result; a failure becomes a readable message.
    ``compute`` returns whether the result was stored (False: cancelled meanwhile)."""
    job = run.job
    try:
        if job.transcoder_set is None:
            raise JobInputError("the job's transcoder set was deleted")
        run.progress("loading", 0.0)
        _engine()
        rm = load_model(job.model, job.transcoder_set)
        stored = compute(run, rm)
    except Exception as exc:
        outcome, message = _explain(run, exc, soft_limit)
        if message is not None:
            _fail(run, message)
        return outcome
    return "succeeded" if stored else "cancelled"


def _explain(run: Run, exc: Exception, soft_limit: float | None) -> tuple[str, str | None]:
    """What a failure means: (outcome, the message the user reads, or None for no write)."""
    from contract.graph_json import GraphValidationError
    from jobs import dispatch, services

    engine = None if _engine_broken else sys.modules.get("inference.engine")
    if engine is not None and isinstance(exc, engine.AttributionCancelled):
        log.info("job %s stopped: cancelled or taken over", run.job.id)
        return "cancelled", None
    if isinstance(exc, SoftTimeLimitExceeded):
        soft = soft_limit or dispatch.time_limits(run.job.model)[0]
        return "failed", (
            f"the job took longer than the {soft:g} s this model allows; "
            "try fewer tokens or a lower max_feature_nodes"
        )
    if isinstance(exc, JobInputError | EngineUnavailable):
        return "failed", str(exc)
    if engine is not None and isinstance(exc, engine.ModelLoadError | engine.TranscoderLoadError):
        return "failed", str(exc)
    if isinstance(exc, GraphValidationError):
        field, message = next(iter(exc.errors.items()), ("graph", str(exc)))
        return "failed", f"{field}: {message}"
    if not _engine_broken and _is_oom(exc):
        log.warning("job %s ran out of GPU memory", run.job.id)
        _free_memory()
        return "failed", services.OOM_MESSAGE
    if isinstance(exc, ValueError):  # the engine's word for bad input
        return "failed", str(exc)
    log.exception("job %s failed", run.job.id)
    doing = _DOING.get(run.job.kind, "running the job")
    return "failed", f"internal error while {doing} ({type(exc).__name__}: {exc})"


_DOING = {
    "attribution": "generating the graph",
    "intervene": "running the intervention",
    "steer": "generating the steered text",
}


def _fail(run: Run, message: str) -> None:
    """Mark the job failed, once more on a fresh connection if an interrupt broke this one."""
    from django.db import connection

    try:
        run.fail(message)
    except Exception:
        log.warning("retrying the failure write of job %s", run.job.id, exc_info=True)
        connection.close()
        run.fail(message)


@shared_task(name="inference.attribute", bind=True, ignore_result=True, acks_late=True)
def attribute(self: Any, job_id: str) -> str:
    """Generate the attribution graph of job ``job_id`` (the message carries only the id)."""
    _, soft = self.request.timelimit or (None, None)
    return run_job(str(job_id), self.request.hostname or "worker", soft)


@shared_task(name="inference.steer", bind=True, ignore_result=True, acks_late=True)
def steer(self: Any, job_id: str) -> str:
    """Run the intervention or steered generation of job ``job_id``."""
    _, soft = self.request.timelimit or (None, None)
    return run_job(str(job_id), self.request.hostname or "worker", soft)


# ---------------------------------------------------------------------------------------------
# Interventions and steering


def _token_texts(rm: ReplacementModel, ids: Any) -> list[dict[str, Any]]:
    return [{"id": int(i), "text": rm.decode_token(int(i))} for i in ids]


def _by_feature(activations: Any) -> dict[tuple[int, ...], float]:
    """(layer, position, feature) -> value, from the engine's FeatureActivations."""
    keys, values = activations.features.tolist(), activations.values.tolist()
    return {tuple(key): float(value) for key, value in zip(keys, values, strict=True)}


def _activation_changes(result: Any, limit: int = 100) -> list[dict[str, Any]]:
    """Features whose activation the run changed, largest change first (at most ``limit``)."""
    clean, after = _by_feature(result.clean_activations), _by_feature(result.activations)
    rows = []
    for key in clean.keys() | after.keys():
        before, now = clean.get(key, 0.0), after.get(key, 0.0)
        if before != now:
            rows.append(
                {"layer": key[0], "position": key[1], "feature": key[2], "clean": before,
                 "value": now}
            )  # fmt: skip
    rows.sort(key=lambda r: (-abs(r["value"] - r["clean"]), r["layer"], r["position"]))
    return rows[:limit]


def _continuation(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "text": data["text"],
        "tokens": [
            {
                "id": t["token"],
                "text": t["text"],
                "probability": t["probability"],
                "top": [
                    {"id": i, "text": text, "probability": p}
                    for i, text, p in zip(
                        t["top_tokens"], t["top_texts"], t["top_probabilities"], strict=True
                    )
                ],
            }
            for t in data["tokens"]
        ],
    }


def steering_result(run: Run, rm: ReplacementModel) -> dict[str, Any]:
    """The engine's answer to an intervene or steer job, as the JSON kept on its SteeringRun."""
    from inference import engine

    job = run.job
    run.progress("steering", 0.0)
    if job.kind == job.Kind.INTERVENE:
        intervention = InterveneParams.from_dict(job.params)
        result = engine.intervene(
            intervention.prompt,
            rm,
            intervention.interventions,
            mode=intervention.mode,
            freeze_attention=intervention.freeze_attention,
        )
        return {
            "input_tokens": _token_texts(rm, result.input_tokens.tolist()),
            "logits": result.logit_table(
                intervention.top_k, intervention.logit_tokens, rm.decode_token
            ),
            "activations": _activation_changes(result),
        }
    params = SteerParams.from_dict(job.params)
    steered = engine.steer_generate(
        params.prompt,
        rm,
        params.interventions,
        n_tokens=params.n_tokens,
        temperature=params.temperature,
        seed=params.seed,
        apply_to_generated=params.apply_to_generated,
        top_k=params.top_k,
    ).to_dict()
    return {
        "input_tokens": _token_texts(rm, steered["input_tokens"]),
        "default": _continuation(steered["default"]),
        "steered": _continuation(steered["steered"]),
    }


def _steering(run: Run, rm: ReplacementModel) -> bool:
    from steering import services

    result = steering_result(run, rm)
    run.progress("storing", 0.0)
    return services.complete(run, result)


# ---------------------------------------------------------------------------------------------
# Tokenize


def tokenize_prompt(
    model_id: int, prompt: str, top_k: int = TokenizeParams.top_k
) -> dict[str, Any]:
    import torch

    from features.models import LanguageModel

    found = (
        LanguageModel.objects.filter(pk=model_id).select_related("default_transcoder_set").first()
    )
    if found is None:
        return {"error": "this model no longer exists", "field": "model"}
    transcoder_set = found.default_transcoder_set or found.transcoder_sets.first()
    if transcoder_set is None:
        return {"error": f"model {found.slug!r} has no transcoder set yet", "field": "model"}
    rm = load_model(found, transcoder_set)
    try:
        ids = rm.tokenize(prompt)
    except ValueError as exc:
        return {"error": str(exc), "field": "prompt"}
    with torch.no_grad():
        logits = rm.model(ids[None].to(rm.device)).logits[0, -1].float()
    probs = torch.softmax(logits, dim=-1)
    top_p, top_ids = torch.topk(probs, min(top_k, probs.shape[0]))
    cumulative = torch.cumsum(top_p, 0)
    return {
        "tokens": [{"id": int(i), "text": rm.decode_token(int(i))} for i in ids],
        "n_tokens": len(ids),
        "top": [
            {
                "id": int(i),
                "token": rm.decode_token(int(i)),
                "prob": float(p),
                "cumulative": float(c),
            }
            for i, p, c in zip(top_ids, top_p, cumulative, strict=True)
        ],
    }


@shared_task(name="inference.tokenize", ignore_result=False)
def tokenize(model_id: int, prompt: str, top_k: int = TokenizeParams.top_k) -> dict[str, Any]:
    """Tokens of ``prompt`` and the top next-token probabilities (see jobs/tokens.py)."""
    try:
        top = TokenizeParams.spec("top_k")
        bounded = max(int(top.low), min(int(top_k), int(top.high or top_k)))
        return tokenize_prompt(int(model_id), str(prompt), bounded)
    except Exception as exc:
        log.exception("tokenize failed for model %s", model_id)
        return {"error": f"the worker could not tokenize this prompt ({type(exc).__name__}: {exc})"}
