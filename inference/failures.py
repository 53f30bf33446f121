"""A job's failure as the message its owner reads, and the write that records it.

Failures end as a failed job with a readable message, never as an exception that leaves the row
"running": CUDA OOM, the soft time limit, a prompt too long for the model, bad targets, model
files that do not load. A hard time limit or a killed worker leaves a stale heartbeat that the
reaper (jobs/services.py) turns into a re-queue or a failure.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

from celery.exceptions import SoftTimeLimitExceeded

from contract.graph_json import GraphValidationError
from inference import model_cache
from inference.model_cache import EngineUnavailable

if TYPE_CHECKING:
    from jobs.services import Run

log = logging.getLogger(__name__)

OOM_MESSAGE = (
    "this prompt needs more GPU memory than this worker has; "
    "try fewer tokens or a lower max_feature_nodes"
)

DASHBOARDS_OOM_MESSAGE = (
    "the dashboards need more GPU memory than this worker has; try a lower batch_size "
    "(or fewer layers per job)"
)
# A dashboards job keeps its checkpoint when it stops early (inference/dashboards_task.py).
DASHBOARDS_RESUME = (
    "the layers imported so far are kept, and the same request continues from the last checkpoint"
)

_DOING = {
    "attribution": "generating the graph",
    "intervene": "running the intervention",
    "steer": "generating the steered text",
    "dashboards": "computing the dashboards",
}


class JobInputError(ValueError):
    """The job's input cannot run on this model; the message is shown to the user as is."""


def _is_oom(exc: BaseException) -> bool:
    import torch

    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def explain(run: Run, exc: Exception, soft_limit: float | None) -> tuple[str, str | None]:
    """What a failure means: (outcome, the message the user reads, or None for no write)."""
    broken = model_cache.engine_broken()
    engine = None if broken else sys.modules.get("inference.engine")
    if engine is not None and isinstance(
        exc, engine.AttributionCancelled | engine.DashboardsCancelled
    ):
        log.info("job %s stopped: cancelled or taken over", run.job.id)
        return "cancelled", None
    if isinstance(exc, SoftTimeLimitExceeded):
        from jobs import dispatch

        soft = soft_limit or dispatch.job_time_limits(run.job)[0]
        if run.job.kind == "dashboards":
            return "failed", (
                f"the job took longer than the {soft:g} s dashboards jobs may run "
                f"(DASHBOARDS_SOFT_TIME_LIMIT_S); {DASHBOARDS_RESUME}"
            )
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
    if not broken and _is_oom(exc):
        log.warning("job %s ran out of GPU memory", run.job.id)
        model_cache.free_memory()
        if run.job.kind == "dashboards":
            return "failed", DASHBOARDS_OOM_MESSAGE
        return "failed", OOM_MESSAGE
    if isinstance(exc, ValueError):  # the engine's word for bad input
        return "failed", str(exc)
    log.exception("job %s failed", run.job.id)
    doing = _DOING.get(run.job.kind, "running the job")
    return "failed", f"internal error while {doing} ({type(exc).__name__}: {exc})"


def fail(run: Run, message: str) -> None:
    """Mark the job failed, once more on a fresh connection if an interrupt broke this one."""
    from django.db import connection

    try:
        run.fail(message)
    except Exception:
        log.warning("retrying the failure write of job %s", run.job.id, exc_info=True)
        connection.close()
        run.fail(message)
