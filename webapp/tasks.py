from __future__ import annotations

import os

from celery import shared_task
from django.utils import timezone

from webapp.models import WorkerHeartbeat


@shared_task(name="webapp.probe", ignore_result=False)
def probe(queue: str) -> dict[str, object]:
    """Record that this worker took a message from ``queue`` and could write to the database."""
    hostname = probe.request.hostname or "unknown"
    row, _ = WorkerHeartbeat.objects.update_or_create(
        hostname=hostname,
        queue=queue,
        defaults={"pid": os.getpid(), "last_seen": timezone.now()},
    )
    return {"hostname": hostname, "queue": queue, "heartbeat_id": row.pk}
