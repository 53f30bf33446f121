"""Sending a job to a worker: the task that runs each kind, the model's queue, the time limits.

The web process sends tasks by name (inference/tasks.py registers these names), so it never
imports worker code. Only the message leaves here; what the row says when sending fails is the
lifecycle's business (jobs/services.py).
"""

from __future__ import annotations

from django.conf import settings

from core.celery import app
from features.models import LanguageModel
from jobs.models import Job

ATTRIBUTE_TASK = "inference.attribute"
STEER_TASK = "inference.steer"
DASHBOARDS_TASK = "inference.dashboards"  # inference/dashboards_task.py
# The Celery task that runs each kind of job.
TASKS: dict[str, str] = {
    Job.Kind.ATTRIBUTION: ATTRIBUTE_TASK,
    Job.Kind.INTERVENE: STEER_TASK,
    Job.Kind.STEER: STEER_TASK,
    Job.Kind.EXPLAIN: "jobs.explain",  # jobs/tasks.py
    Job.Kind.DASHBOARDS: DASHBOARDS_TASK,
}
# Kinds that need no model loaded run on the shared default queue, never a GPU queue.
DEFAULT_QUEUE_KINDS = {Job.Kind.EXPLAIN}


def queue_for(model: LanguageModel) -> str:
    """Each model has its own GPU queue; a worker consumes the queues of the models it serves."""
    return f"gpu.{model.slug}"


def time_limits(model: LanguageModel) -> tuple[int, int]:
    """(soft, hard) seconds for one job on ``model``: JOBS_TIME_LIMITS, else the defaults."""
    default = (settings.JOBS_SOFT_TIME_LIMIT_S, settings.JOBS_HARD_TIME_LIMIT_S)
    limits: tuple[int, int] = settings.JOBS_TIME_LIMITS.get(model.slug, default)
    return limits


def job_time_limits(job: Job) -> tuple[int, int]:
    """(soft, hard) seconds for ``job``: dashboards have their own (DASHBOARDS_*_TIME_LIMIT_S),
    every other kind its model's."""
    if job.kind == Job.Kind.DASHBOARDS:
        return settings.DASHBOARDS_SOFT_TIME_LIMIT_S, settings.DASHBOARDS_HARD_TIME_LIMIT_S
    return time_limits(job.model)


def send(job: Job) -> None:
    """The job's message (its id only) to its queue, with its time limits."""
    soft, hard = job_time_limits(job)
    app.send_task(
        TASKS[job.kind],
        args=[str(job.id)],
        queue=job.queue,
        soft_time_limit=soft,
        time_limit=hard,
    )
