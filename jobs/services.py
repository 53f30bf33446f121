"""Every write to a job row: enqueue, claim, progress, finish, fail, cancel, reap.

Job kinds share this lifecycle: attribution graphs (stored as a Graph through graphs/services.py), and interventions and
steered generations (stored as a SteeringRun by steering/services.py, which marks the job
succeeded with ``Run.mark_succeeded`` in the same transaction).

The row is the truth and every transition is a compare-and-set update, so the order in which
messages, workers, users and the reaper act never matters:

- ``enqueue``: the row is created in the request's transaction; the Celery message (the job id
  only, sent by task name) goes out in ``transaction.on_commit``.
- ``claim``: ``queued → running`` only if still queued; a redelivered or duplicate message finds
  the row running or finished and does nothing. ``attempts`` is incremented and becomes the
  fencing token: every later write of that run requires ``status=running, attempts=<its value>``.
- ``Run``: what the worker holds while it works: a heartbeat thread (which also notices a
  cancel, so ``should_stop`` costs nothing per batch) and throttled progress writes + events.
- ``reap``: a running job whose heartbeat is older than ``JOBS_HEARTBEAT_TIMEOUT_S`` lost its
  worker; it is re-queued while it has attempts left (``JOBS_MAX_ATTEMPTS``), then failed.

Which task and queue a job goes to is jobs/dispatch.py; storing a generated graph is
graphs/services.py (``store_generated_graph``); each app builds the links to its own pages.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import close_old_connections, connection, transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from contract.params import AttributeParams
from features.models import LanguageModel, TranscoderSet
from graphs import services as graph_services
from graphs.models import Graph
from jobs import dispatch, events
from jobs.models import Job

if TYPE_CHECKING:
    from django.contrib.auth.models import User

log = logging.getLogger(__name__)

# Share of the overall percentage each phase covers (the engine reports a fraction per phase).
PHASE_SPANS: dict[str, tuple[float, float]] = {
    "loading": (0.0, 5.0),
    "forward": (5.0, 15.0),
    "logits": (15.0, 25.0),
    "features": (25.0, 95.0),
    "steering": (5.0, 95.0),
    # Dashboards (inference/dashboards_task.py): stream the corpus, decode the examples, then
    # finish and import one layer at a time.
    "activations": (5.0, 80.0),
    "examples": (80.0, 90.0),
    "outputs": (90.0, 100.0),
    "storing": (95.0, 100.0),
}
# Queued jobs told their new position after a claim or cancel on their queue.
_POSITION_UPDATES = 50


class TooManyJobs(Exception):
    def __init__(self, active: int, limit: int) -> None:
        super().__init__(
            f"you have {active} jobs queued or running; the limit is {limit}: "
            "wait for some to finish or cancel them"
        )


# ---------------------------------------------------------------------------------------------
# Sending


def _send_or_fail(jobs: list[Job]) -> None:
    """Send after commit. If the broker is down the jobs fail now, not wait in "queued" forever."""
    for job in jobs:
        try:
            dispatch.send(job)
        except Exception as exc:  # kombu raises many kinds of connection errors
            log.exception("could not send job %s to %s", job.id, job.queue)
            Job.objects.filter(pk=job.pk, status=Job.Status.QUEUED).update(
                status=Job.Status.FAILED,
                error=f"could not reach the job queue ({type(exc).__name__}); try again later",
                finished_at=timezone.now(),
            )


# ---------------------------------------------------------------------------------------------
# Creating jobs (web process)


def create_jobs(
    *,
    kind: str,
    owner: User,
    model: LanguageModel,
    transcoder_set: TranscoderSet | None,
    params: list[dict[str, Any]],
    batch: bool = False,
) -> list[Job]:
    """One queued job per entry of ``params``, sent to the model's queue on commit. Call inside
    a transaction to create rows that point at the jobs in the same commit.

    Raises ``TooManyJobs`` when the owner would exceed ``JOBS_MAX_ACTIVE_PER_USER``.
    """
    limit = settings.JOBS_MAX_ACTIVE_PER_USER
    batch_id = uuid.uuid4() if batch else None
    queue = "default" if kind in dispatch.DEFAULT_QUEUE_KINDS else dispatch.queue_for(model)
    with transaction.atomic():
        # Serialise one user's submissions so two requests cannot both pass the limit.
        get_user_model().objects.select_for_update().filter(pk=owner.pk).first()
        active = Job.objects.filter(owner=owner).active().count()
        if active + len(params) > limit:
            raise TooManyJobs(active, limit)
        now = timezone.now()
        jobs = [
            Job(
                kind=kind,
                params=job_params,
                owner=owner,
                model=model,
                transcoder_set=transcoder_set,
                batch_id=batch_id,
                queue=queue,
                # Distinct creation times keep queue positions in submission order.
                created_at=now + timedelta(microseconds=i),
            )
            for i, job_params in enumerate(params)
        ]
        Job.objects.bulk_create(jobs)
        transaction.on_commit(lambda: _send_or_fail(jobs))
    return jobs


def create_attribution_jobs(
    *,
    owner: User,
    model: LanguageModel,
    transcoder_set: TranscoderSet | None,
    prompts: list[str],
    params: dict[str, Any],
    batch: bool = False,
) -> list[Job]:
    """One attribution job per prompt, sharing ``params`` (see ``create_jobs``)."""
    return create_jobs(
        kind=Job.Kind.ATTRIBUTION,
        owner=owner,
        model=model,
        transcoder_set=transcoder_set,
        params=[{**params, "prompt": prompt} for prompt in prompts],
        batch=batch,
    )


# ---------------------------------------------------------------------------------------------
# Reading


def queue_position(job: Job) -> int | None:
    """1 = next on its queue; None once it is no longer queued."""
    if job.status != Job.Status.QUEUED:
        return None
    ahead = Job.objects.queued_on(job.queue).filter(created_at__lt=job.created_at).count()
    return ahead + 1


def steering_run_links(job: Job) -> dict[str, str] | None:
    """Where the result of an intervention or steering job is read: its run, which steering/
    links to its job (jobs/ cannot import steering/, so it reads the run through the relation)."""
    if job.kind == Job.Kind.ATTRIBUTION:
        return None
    run = getattr(job, "steering_run", None)  # None once the run is deleted
    return run.links() if run is not None else None


def snapshot(job: Job) -> dict[str, Any]:
    """The job as one websocket ``state`` event: what a (re)connecting page catches up from."""
    return {
        "type": "state",
        "job": str(job.id),
        "status": job.status,
        "phase": job.phase,
        "percent": round(job.percent, 1),
        "position": queue_position(job),
        "attempts": job.attempts,
        "error": job.error,
        "graph": job.graph.links() if job.graph is not None else None,
        "run": steering_run_links(job),
    }


def _emit(job: Job, event: dict[str, Any]) -> None:
    """Queue an event for the job's sockets (in order, without waiting; see jobs/events.py)."""
    events.send(job.group, {**event, "job": str(job.id)})


def _announce_positions(queue: str) -> None:
    queued = Job.objects.queued_on(queue).order_by("created_at").only("id")[:_POSITION_UPDATES]
    for position, job in enumerate(queued, start=1):
        _emit(job, {"type": "queued", "position": position})


# ---------------------------------------------------------------------------------------------
# Worker side


def claim(job_id: str, worker: str) -> Job | None:
    """Move the job from queued to running for this worker; None if it is not queued."""
    try:
        pk = uuid.UUID(str(job_id))
    except ValueError:
        log.warning("ignoring a message with a malformed job id %r", job_id)
        return None
    now = timezone.now()
    claimed = Job.objects.filter(pk=pk, status=Job.Status.QUEUED).update(
        status=Job.Status.RUNNING,
        worker=worker[:200],
        heartbeat_at=now,
        started_at=now,
        attempts=F("attempts") + 1,
        phase="loading",
        percent=0.0,
        error="",
    )
    if claimed != 1:
        return None
    job = Job.objects.select_related("model", "transcoder_set", "owner").get(pk=pk)
    _emit(job, {"type": "running", "attempt": job.attempts, "worker": job.worker})
    _announce_positions(job.queue)
    return job


def overall_percent(phase: str, fraction: float) -> float:
    low, high = PHASE_SPANS.get(phase, (0.0, 100.0))
    return low + (high - low) * min(1.0, max(0.0, fraction))


class Run:
    """One claimed attempt of a job, as the worker sees it.

    Use as a context manager: a heartbeat thread writes ``heartbeat_at`` every
    ``JOBS_HEARTBEAT_INTERVAL_S`` while the job runs, and if that conditional write finds the row
    no longer ours (cancelled, or re-queued by the reaper) it sets the flag ``should_stop`` reads.
    """

    def __init__(self, job: Job) -> None:
        self.job = job
        self.attempt = job.attempts
        self.percent = 0.0
        self._lost = threading.Event()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._phase = ""
        self._last_write = 0.0

    def __enter__(self) -> Run:
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{self.job.id}")
        self._thread.daemon = True
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def mine(self) -> QuerySet[Job]:
        return Job.objects.filter(pk=self.job.pk, status=Job.Status.RUNNING, attempts=self.attempt)

    def _beat(self) -> None:
        try:
            while not self._done.wait(settings.JOBS_HEARTBEAT_INTERVAL_S):
                try:
                    if self.mine().update(heartbeat_at=timezone.now()) == 0:
                        self._lost.set()
                        return
                except Exception:
                    log.warning("heartbeat write failed for job %s", self.job.id, exc_info=True)
                    close_old_connections()
        finally:
            connection.close()  # this thread's own connection

    def should_stop(self) -> bool:
        return self._lost.is_set()

    def progress(self, phase: str, fraction: float) -> None:
        """Throttled: an event per phase change, else at most one event and one row write
        every JOBS_PROGRESS_INTERVAL_MS (a page that reconnects reads the row, so it may lag
        that much; the heartbeat thread notices a cancel in the meantime)."""
        percent = max(self.percent, overall_percent(phase, fraction))
        now = time.monotonic()
        due = now - self._last_write >= settings.JOBS_PROGRESS_INTERVAL_MS / 1000
        if phase == self._phase and not due:
            return
        self._phase, self.percent = phase, percent
        if due:
            self._last_write = now
            written = self.mine().update(phase=phase, percent=percent, heartbeat_at=timezone.now())
            if written == 0:
                self._lost.set()
                return
        _emit(self.job, {"type": "progress", "phase": phase, "percent": round(percent, 1)})

    def fail(self, message: str) -> bool:
        failed = self.mine().update(
            status=Job.Status.FAILED, error=message[:2000], phase="", finished_at=timezone.now()
        )
        if failed:
            _emit(self.job, {"type": "failed", "message": message[:2000]})
        return failed == 1

    def complete_attribution(self, document: dict[str, Any]) -> Graph | None:
        """Store the graph JSON (see ``graphs.services.store_generated_graph``) and point the job
        at it, in one transaction. None (and nothing stored) if the job was cancelled or
        re-queued.

        Raises ``GraphValidationError`` when the graph cannot be stored (e.g. slug taken).
        """
        self.progress("storing", 0.0)
        job, params = self.job, AttributeParams.from_dict(self.job.params)
        try:
            graph = graph_services.store_generated_graph(
                document,
                model=job.model,
                transcoder_set=job.transcoder_set,
                owner=job.owner,
                prompt=params.prompt,
                slug=params.slug,
                visibility=params.visibility,
                title=params.title,
                target=params.target,
                # Only internal callers (the demo loader) set this; the API refuses the field.
                featured=params.featured,
                then=lambda graph: self.mark_succeeded(graph=graph),
            )
        except JobLost:
            return None
        _emit(job, {"type": "done", "graph": graph.links()})
        return graph

    def mark_succeeded(self, **fields: Any) -> None:
        """Mark this run's job succeeded (with ``fields``, e.g. its graph). Call it inside the
        transaction that stores the result: it raises ``JobLost`` when the row is no longer ours
        (cancelled or re-queued meanwhile), which rolls the result back with it."""
        now = timezone.now()
        finished = self.mine().update(
            status=Job.Status.SUCCEEDED,
            phase="",
            percent=100.0,
            heartbeat_at=now,
            finished_at=now,
            **fields,
        )
        if finished != 1:
            raise JobLost

    def emit(self, event: dict[str, Any]) -> None:
        _emit(self.job, event)


class JobLost(Exception):
    """The row changed under the run (cancelled or re-queued): roll its result back."""


# ---------------------------------------------------------------------------------------------
# Cancelling and reaping


def cancel(job: Job) -> bool:
    """Cancel a queued or running job. A running one stops at its next backward batch."""
    cancelled = Job.objects.filter(pk=job.pk, status__in=Job.ACTIVE).update(
        status=Job.Status.CANCELLED, phase="", finished_at=timezone.now()
    )
    if cancelled:
        _emit(job, {"type": "cancelled"})
        _announce_positions(job.queue)
    return cancelled == 1


def _stale_cutoff(now: datetime | None = None) -> datetime:
    return (now or timezone.now()) - timedelta(seconds=settings.JOBS_HEARTBEAT_TIMEOUT_S)


def reap_job(job: Job, now: datetime | None = None) -> str | None:
    """Re-queue (or fail, when out of attempts) ``job`` if its worker's heartbeat is stale.

    Returns "requeued", "failed" or None when the job is fine (or someone else acted first).
    """
    now = now or timezone.now()
    stale = Job.objects.filter(
        pk=job.pk,
        status=Job.Status.RUNNING,
        attempts=job.attempts,
        heartbeat_at__lt=_stale_cutoff(now),
    )
    who = job.worker or "its worker"
    if job.attempts < settings.JOBS_MAX_ATTEMPTS:
        note = f"{who} stopped responding during attempt {job.attempts}; re-queued"
        requeued = stale.update(
            status=Job.Status.QUEUED,
            worker="",
            heartbeat_at=None,
            phase="",
            percent=0.0,
            error=note,
        )
        if not requeued:
            return None
        log.warning("job %s: %s", job.id, note)
        _emit(job, {"type": "requeued", "attempt": job.attempts, "message": note})
        _send_or_fail([job])
        _announce_positions(job.queue)
        return "requeued"
    message = (
        f"the worker running this job ({who}) stopped responding "
        f"(attempt {job.attempts} of {settings.JOBS_MAX_ATTEMPTS}); try again later"
    )
    if not stale.update(status=Job.Status.FAILED, error=message, phase="", finished_at=now):
        return None
    log.warning("job %s failed: %s", job.id, message)
    _emit(job, {"type": "failed", "message": message})
    return "failed"


def reap(now: datetime | None = None) -> dict[str, int]:
    """Handle every running job whose worker died. Safe to run from many processes at once."""
    counts = {"requeued": 0, "failed": 0}
    stale = Job.objects.stale(_stale_cutoff(now)).select_related("model")[:500]
    for job in stale:
        outcome = reap_job(job, now)
        if outcome is not None:
            counts[outcome] += 1
    return counts


def refresh_if_stale(job: Job) -> Job:
    """Reading a job reaps it first when its worker died, so no page shows "running" forever,
    even while no worker is alive to run the periodic reaper."""
    if (
        job.status == Job.Status.RUNNING
        and job.heartbeat_at is not None
        and job.heartbeat_at < _stale_cutoff()
        and reap_job(job) is not None
    ):
        job.refresh_from_db()
    return job
