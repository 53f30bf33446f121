from __future__ import annotations

from django.db import models


class WorkerHeartbeat(models.Model):
    """The last time a Celery worker answered a probe through the queue, and from which queue.

    Written by the ``webapp.probe`` task, so a row proves the whole path works: broker, worker,
    database. ``/healthz?deep=1`` sends the probe and reports its round trip.
    """

    hostname = models.CharField(max_length=255)
    queue = models.CharField(max_length=100)
    pid = models.PositiveIntegerField()
    last_seen = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["hostname", "queue"], name="one_heartbeat_per_worker_queue"
            )
        ]

    def __str__(self) -> str:
        return f"{self.hostname} on {self.queue} at {self.last_seen:%Y-%m-%d %H:%M:%S}"
