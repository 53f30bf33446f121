"""The only bridge between the web side and the engine: Celery tasks in, engine calls, rows out.

Tasks are registered under explicit names (``inference.attribute``, ``inference.steer``,
``inference.dashboards``, ``inference.tokenize``) and
the web process sends them by name, so it never imports this module. Nothing here imports torch
or the engine at module level: each pool child loads the engine, and the models it is asked for,
on first use (inference/model_cache.py). A failure ends as a failed job with a readable message
(inference/failures.py); steering results are shaped by inference/steering_json.py.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from celery import shared_task
from django.conf import settings

from contract.params import (
    ENGINE_BATCH_SIZE,
    AttributeParams,
    InterveneParams,
    SteerParams,
    TokenizeParams,
)
from inference import dashboards_task, model_cache, steering_json
from inference.failures import JobInputError, explain, fail
from inference.model_cache import load_model

if TYPE_CHECKING:
    from inference.engine import ReplacementModel, memory_plan
    from jobs.services import Run

log = logging.getLogger(__name__)

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


def _memory_budget(rm: ReplacementModel) -> int:
    """Bytes one attribution may use here: ``JOBS_WORKER_MEMORY_GB``, or the device's memory."""
    from inference.engine import memory_plan

    return int(settings.JOBS_WORKER_MEMORY_GB * 10**9) or memory_plan.device_memory(rm.device)


def _memory_plan(
    rm: ReplacementModel, tokens: Any, params: AttributeParams, targets: Any
) -> memory_plan.Estimate:
    """The batch size and memory layout that fit this worker (`_memory_budget`), from one
    forward pass; a run that cannot fit fails here, before any backward pass, with a message
    naming the setting to lower (docs/engine.md, "Memory")."""
    import torch

    from inference.engine import memory_plan

    # a token list is its length in targets, a logit difference one, the top logits at most this
    n_logits = len(targets) if isinstance(targets, list) else 1 if targets else params.max_n_logits
    try:
        return memory_plan.plan(
            memory_plan.Shapes.of(rm),
            memory_plan.measure(rm, tokens),
            budget_bytes=_memory_budget(rm),
            max_feature_nodes=params.max_feature_nodes,
            n_logits=n_logits,
            batch_size=params.batch_size,
            default_batch_size=ENGINE_BATCH_SIZE,
            # a GPU worker may offload the ranking buffer to its host, within the host's memory
            host_budget_bytes=None
            if rm.device.type == "cpu"
            else memory_plan.device_memory(torch.device("cpu")),
        )
    except memory_plan.MemoryBudgetExceeded as exc:
        raise JobInputError(str(exc)) from None


def memory_estimate(rm: ReplacementModel, tokens: Any) -> dict[str, Any]:
    """What an attribution of ``tokens`` with the job defaults would need on this worker, for
    the generate form: bytes (weights included), this worker's budget, the batch size and
    ranking the planner picks, or the refusal a job would fail with."""
    params = AttributeParams()
    budget = _memory_budget(rm)
    planned: memory_plan.Estimate | None
    refusal = ""
    try:
        planned = _memory_plan(rm, tokens, params, None)
    except JobInputError as exc:
        planned, refusal = None, str(exc)
    return {
        "bytes": None if planned is None else planned.device_total,
        "budget_bytes": budget,
        "batch_size": None if planned is None else planned.batch_size,
        "max_feature_nodes": params.max_feature_nodes,
        "ranking_entries": None if planned is None else planned.layout.ranking_entries,
        "refusal": refusal,
    }


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
    targets = _targets(rm, params.target)
    planned = _memory_plan(rm, tokens, params, targets)
    graph = engine.attribute(
        tokens,
        rm,
        attribution_targets=targets,
        max_n_logits=params.max_n_logits,
        desired_logit_prob=params.desired_logit_prob,
        max_feature_nodes=params.max_feature_nodes,
        batch_size=planned.batch_size,
        hold_decoder_blocks=planned.layout.hold_decoder_blocks,
        offload_rows=planned.layout.offload_rows,
        ranking_entries=planned.layout.ranking_entries,
        on_progress=run.progress,
        should_stop=run.should_stop,
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
    computes: dict[str, Callable[[Run, ReplacementModel], bool]] = {
        job.Kind.ATTRIBUTION: _attribution,
        job.Kind.DASHBOARDS: dashboards_task.compute,
    }
    compute = computes.get(job.kind, _steering)
    with services.Run(job) as run:
        outcome = _run(run, compute, soft_limit)
    events.flush()  # the last events leave before the task reports done
    if model_cache.engine_broken():
        # An import interrupted half-way (e.g. by the soft time limit) leaves torch unusable in
        # this process: exit, and the pool starts a fresh child. The job is already marked
        # failed, so the message the broker hands back is skipped.
        log.error("the engine import failed in this process; exiting so the pool replaces it")
        os._exit(70)
    return outcome


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
        model_cache.load_engine()
        rm = load_model(job.model, job.transcoder_set)
        stored = compute(run, rm)
    except Exception as exc:
        outcome, message = explain(run, exc, soft_limit)
        if message is not None:
            fail(run, message)
        return outcome
    return "succeeded" if stored else "cancelled"


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


@shared_task(name="inference.dashboards", bind=True, ignore_result=True, acks_late=True)
def dashboards(self: Any, job_id: str) -> str:
    """Compute the feature dashboards of job ``job_id`` (inference/dashboards_task.py)."""
    _, soft = self.request.timelimit or (None, None)
    return run_job(str(job_id), self.request.hostname or "worker", soft)


# ---------------------------------------------------------------------------------------------
# Interventions and steering


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
        return steering_json.intervention_json(
            rm, result, top_k=intervention.top_k, logit_tokens=intervention.logit_tokens
        )
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
    return steering_json.steering_json(rm, steered)


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
    from features.models import LanguageModel
    from inference import engine

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
    top = engine.top_next_tokens(rm, ids, top_k)
    return {
        "memory": memory_estimate(rm, ids),
        "tokens": [{"id": int(i), "text": rm.decode_token(int(i))} for i in ids],
        "n_tokens": len(ids),
        "top": [
            {
                "id": t.id,
                "token": rm.decode_token(t.id),
                "prob": t.probability,
                "cumulative": t.cumulative,
            }
            for t in top
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
