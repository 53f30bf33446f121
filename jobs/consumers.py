"""``/ws/jobs/{id}/``: live events of one job, for its owner (and staff).

On connect the socket first gets ``{"type": "state", ...}`` (the row as it is now: status, phase,
percent, queue position, graph or error), so a page that reconnects catches up; then the events
workers and the API push (see docs/jobs.md for every type). Anyone else gets close code 4404.
"""

from __future__ import annotations

import uuid
from typing import Any

from channels.db import database_sync_to_async

from core.realtime import GroupEventConsumer
from jobs import services
from jobs.models import Job


def _visible_job(user: Any, job_id: str) -> Job | None:
    try:
        pk = uuid.UUID(job_id)
    except ValueError:
        return None
    return Job.objects.visible_to(user).filter(pk=pk).first()


def _state(job_id: uuid.UUID) -> dict[str, Any]:
    job = Job.objects.select_related("graph__model").get(pk=job_id)
    return services.snapshot(services.refresh_if_stale(job))


class JobConsumer(GroupEventConsumer):
    job: Job | None = None

    async def groups_for_connection(self) -> list[str]:
        job_id = str(self.scope["url_route"]["kwargs"]["job_id"])
        self.job = await database_sync_to_async(_visible_job)(self.scope.get("user"), job_id)
        return [] if self.job is None else [self.job.group]

    async def on_joined(self) -> None:
        assert self.job is not None
        await self.send_json(await database_sync_to_async(_state)(self.job.pk))
