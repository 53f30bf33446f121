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


class ApiTokenQuerySet(models.QuerySet["ApiToken"]):
    def active(self) -> ApiTokenQuerySet:
        return self.filter(revoked_at__isnull=True)


class ApiToken(models.Model):
    """A named, revocable API token. Only its SHA-256 is stored; the token is shown once.

    Tokens are 256 random bits, so a fast hash is enough: nobody can brute-force the preimage,
    and a lookup by digest is one indexed query per request (see webapp/auth.py).
    """

    user = models.ForeignKey("auth.User", on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    # The first characters of the token, shown in lists so people can tell tokens apart.
    prefix = models.CharField(max_length=12)
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…) of {self.user_id}"
