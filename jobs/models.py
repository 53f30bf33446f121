"""The job row: the source of truth for a unit of work (an attribution graph, an intervention,
a steered generation or a set's feature dashboards on a GPU queue; feature explanations on the
default queue).

Lifecycle: queued → running → succeeded | failed | cancelled. A worker moves a row only with
compare-and-set updates on ``(status, attempts)``: ``attempts`` is the fencing token of the run
that claimed it, so a stalled worker whose job was re-queued can no longer write to it.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models

from core.visibility import is_staff

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

    User = AbstractBaseUser | AnonymousUser | None


class JobQuerySet(models.QuerySet["Job"]):
    def visible_to(self, user: User) -> JobQuerySet:
        """Jobs are private to their owner (and staff); everyone else gets 404."""
        if is_staff(user):
            return self
        if user is None or not user.is_authenticated:
            return self.none()
        return self.filter(owner=user)

    def active(self) -> JobQuerySet:
        return self.filter(status__in=Job.ACTIVE)

    def queued_on(self, queue: str) -> JobQuerySet:
        return self.filter(status=Job.Status.QUEUED, queue=queue)

    def stale(self, cutoff: datetime) -> JobQuerySet:
        """Running jobs whose worker has not written a heartbeat since ``cutoff``."""
        return self.filter(status=Job.Status.RUNNING, heartbeat_at__lt=cutoff)

    def in_batch(self, batch_id: uuid.UUID) -> JobQuerySet:
        return self.filter(batch_id=batch_id)


class Job(models.Model):
    class Kind(models.TextChoices):
        ATTRIBUTION = "attribution", "Attribution graph"
        INTERVENE = "intervene", "Feature intervention"
        STEER = "steer", "Steered generation"
        EXPLAIN = "explain", "Feature explanations"
        DASHBOARDS = "dashboards", "Feature dashboards"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    ACTIVE = (Status.QUEUED, Status.RUNNING)
    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    # A UUID, so job URLs and websocket paths cannot be enumerated.
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.ATTRIBUTION)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    # Engine phase while running ("loading", "forward", "logits", "features", "steering",
    # "storing").
    phase = models.CharField(max_length=20, blank=True)
    percent = models.FloatField(default=0.0)
    # The validated request (prompt, thresholds, target, slug, visibility ...).
    params = models.JSONField(default=dict)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="jobs"
    )
    model = models.ForeignKey(
        "features.LanguageModel", on_delete=models.CASCADE, related_name="jobs"
    )
    transcoder_set = models.ForeignKey(
        "features.TranscoderSet", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    graph = models.ForeignKey(
        "graphs.Graph", null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs"
    )
    error = models.TextField(blank=True)
    # What a finished job produced when it has no row of its own (an explain job's counts).
    result = models.JSONField(null=True, blank=True)
    batch_id = models.UUIDField(null=True, blank=True)
    # The Celery queue its message went to (gpu.<model-slug>).
    queue = models.CharField(max_length=120)
    worker = models.CharField(max_length=200, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # Runs claimed so far; also the fencing token of the current run.
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = JobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # Queue positions: queued jobs on one queue in order.
            models.Index(fields=["queue", "status", "created_at"], name="job_queue_order"),
            # The reaper: running jobs by heartbeat.
            models.Index(fields=["status", "heartbeat_at"], name="job_status_heartbeat"),
            models.Index(fields=["owner", "status"], name="job_owner_status"),
            models.Index(fields=["batch_id"], name="job_batch"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} job {self.id} ({self.status})"

    @property
    def group(self) -> str:
        """The Channels group its websocket events go to."""
        return f"job.{self.id}"

    @property
    def websocket_path(self) -> str:
        """Where a page follows its events (jobs/consumers.py)."""
        return f"/ws/jobs/{self.id}/"

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED
