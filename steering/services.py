"""Writes to steering runs: create (with its job), re-run, store the worker's result, delete;
and the lookups a run request needs (the graph and subgraph it tests, its prompt's token count).

A run and its job are created in one transaction, and the job's message leaves on commit
(jobs/services.py), so a worker never sees a job whose run does not exist yet. The worker stores
the result and marks the job succeeded in one transaction too (``complete``): a run whose job was
cancelled or re-queued meanwhile keeps no half-written result.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import transaction

from contract.params import InterveneParams, SteerParams
from features.models import LanguageModel
from graphs.models import Graph, Subgraph
from jobs import services as job_services
from jobs import tokens
from jobs.models import Job
from steering.interventions import expand
from steering.models import SteeringRun

if TYPE_CHECKING:
    from django.contrib.auth.models import User


def job_params(kind: str, fields: dict[str, Any]) -> dict[str, Any]:
    """What the worker reads from the job row (``InterveneParams`` or ``SteerParams``): the
    prompt, the flat intervention list and the settings (see inference/tasks.py)."""
    params_class = InterveneParams if kind == Job.Kind.INTERVENE else SteerParams
    params = params_class(
        prompt=fields["prompt"], interventions=expand(fields["interventions"]), **fields["settings"]
    )
    return params.to_dict()


class RequestError(Exception):
    """A run request names something it cannot use; ``errors`` is {field: message}."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.errors = {field: message}


def graph_and_subgraph(
    user: Any, model: LanguageModel, graph_slug: str | None, subgraph_slug: str | None
) -> tuple[Graph | None, Subgraph | None]:
    """The graph and saved subgraph a run tests (a subgraph implies its graph). Raises
    ``RequestError`` when ``user`` cannot open them or they do not belong to ``model``."""
    graph: Graph | None = None
    if graph_slug is not None:
        graph = Graph.objects.visible_to(user).filter(model=model, slug=graph_slug).first()
        if graph is None:
            raise RequestError(
                "graph", f"model {model.slug!r} has no graph {graph_slug!r} you can open"
            )
    subgraph: Subgraph | None = None
    if subgraph_slug is not None:
        subgraph = (
            Subgraph.objects.visible_to(user)
            .select_related("graph")
            .filter(share_slug=subgraph_slug)
            .first()
        )
        if subgraph is None:
            raise RequestError("subgraph", "no such subgraph you can open")
        if graph is not None and subgraph.graph_id != graph.pk:
            raise RequestError("subgraph", "it belongs to another graph")
        if subgraph.graph.model_id != model.pk:
            raise RequestError("subgraph", "it is a graph of another model")
        graph = subgraph.graph
    return graph, subgraph


def prompt_token_count(model: LanguageModel, prompt: str, graph: Graph | None) -> int | None:
    """Tokens of the prompt, special first token included; None when unknown here. The graph's
    own tokens when the prompt is the graph's, else the model's tokenizer (jobs/tokens.py)."""
    if graph is not None and prompt == graph.prompt and graph.prompt_tokens:
        return len(graph.prompt_tokens)
    return tokens.count_tokens(model, prompt)


def create_run(*, kind: str, owner: User, fields: dict[str, Any]) -> SteeringRun:
    """A queued run with its job. Raises jobs' ``TooManyJobs`` at the per-user job limit."""
    with transaction.atomic():
        (job,) = job_services.create_jobs(
            kind=kind,
            owner=owner,
            model=fields["model"],
            transcoder_set=fields["transcoder_set"],
            params=[job_params(kind, fields)],
        )
        return SteeringRun.objects.create(
            kind=kind,
            owner=owner,
            job=job,
            model=fields["model"],
            transcoder_set=fields["transcoder_set"],
            graph=fields["graph"],
            subgraph=fields["subgraph"],
            prompt=fields["prompt"],
            interventions=fields["interventions"],
            settings=fields["settings"],
            title=fields["title"],
            visibility=fields["visibility"],
            rerun_of=fields.get("rerun_of"),
        )


def request_body(run: SteeringRun, user: Any) -> dict[str, Any]:
    """The API request that makes the same run, for ``user`` (links they cannot open are left
    out). Re-running validates it again, so a run from before a model change fails cleanly."""
    body: dict[str, Any] = {
        "model": run.model.slug,
        "prompt": run.prompt,
        "interventions": run.interventions,
        "title": run.title,
        **run.settings,
    }
    if run.transcoder_set is not None:
        body["transcoder_set"] = run.transcoder_set.slug
    if (
        run.subgraph is not None
        and Subgraph.objects.visible_to(user).filter(pk=run.subgraph.pk).exists()
    ):
        body["subgraph"] = run.subgraph.share_slug
    elif run.graph is not None and Graph.objects.visible_to(user).filter(pk=run.graph.pk).exists():
        body["graph"] = run.graph.slug
    return body


def complete(job_run: job_services.Run, result: dict[str, Any]) -> bool:
    """Store the worker's result on the job's run and mark the job succeeded, atomically.
    False (nothing stored) when the job was cancelled or re-queued meanwhile."""
    job = job_run.job
    try:
        with transaction.atomic():
            run = SteeringRun.objects.select_for_update().filter(job_id=job.pk).only("id").first()
            if run is None:
                raise job_services.JobLost  # the run was deleted while its job ran
            SteeringRun.objects.filter(pk=run.pk).update(result=result)
            job_run.mark_succeeded()
    except job_services.JobLost:
        return False
    job_run.emit({"type": "done", "run": run.links()})
    return True


def delete_run(run: SteeringRun) -> None:
    """Delete a run; its job, if still queued or running, is cancelled first."""
    job: Job | None = run.job
    with transaction.atomic():
        if job is not None and not job.is_finished:
            job_services.cancel(job)
        run.delete()
