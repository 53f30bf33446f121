"""Steering runs: interventions and steered generations, kept with the graph they test.

A run records what was asked (prompt, interventions as the user grouped them, settings) and, once
its job succeeds, what came out (``result``). Its job (jobs/) carries the status, progress and
error; the run outlives nothing of it, so a run without a result shows its job's state.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse

from core.visibility import Visibility, is_staff
from graphs.models import Graph

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

    User = AbstractBaseUser | AnonymousUser | None


class SteeringRunQuerySet(models.QuerySet["SteeringRun"]):
    def visible_to(self, user: User) -> SteeringRunQuerySet:
        """Runs this user may open: their own, and others' public or unlisted runs whose graph
        (when they have one) the user may open too."""
        if is_staff(user):
            return self
        shared = Q(visibility__in=[Visibility.PUBLIC, Visibility.UNLISTED]) & (
            Q(graph__isnull=True) | Q(graph__in=Graph.objects.visible_to(user))
        )
        if user is not None and user.is_authenticated:
            return self.filter(shared | Q(owner=user))
        return self.filter(shared)

    def listed_for(self, user: User) -> SteeringRunQuerySet:
        """Runs shown in lists: the user's own and public ones (unlisted stay off lists)."""
        if is_staff(user):
            return self
        mine = Q(owner=user) if user is not None and user.is_authenticated else Q(pk__in=[])
        return self.visible_to(user).filter(Q(visibility=Visibility.PUBLIC) | mine)


class SteeringRun(models.Model):
    class Kind(models.TextChoices):
        INTERVENE = "intervene", "Intervention"
        STEER = "steer", "Steered generation"

    # A UUID, so private runs cannot be enumerated.
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="steering_runs"
    )
    model = models.ForeignKey(
        "features.LanguageModel", on_delete=models.CASCADE, related_name="steering_runs"
    )
    transcoder_set = models.ForeignKey(
        "features.TranscoderSet", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The graph (and saved subgraph) whose hypothesis the run tests, if it came from one.
    graph = models.ForeignKey(
        Graph, null=True, blank=True, on_delete=models.SET_NULL, related_name="steering_runs"
    )
    subgraph = models.ForeignKey(
        "graphs.Subgraph",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="steering_runs",
    )
    title = models.CharField(max_length=200, blank=True)
    prompt = models.TextField()
    # As requested: single features and supernode groups with one action and value each.
    interventions = models.JSONField(default=list)
    # mode, freeze_attention, top_k, logit_tokens (intervene); n_tokens, temperature, seed,
    # apply_to_generated, top_k (steer).
    settings = models.JSONField(default=dict)
    # What the worker computed; null until the job succeeds (see docs/steering.md for its shape).
    result = models.JSONField(null=True, blank=True)
    job = models.OneToOneField(
        "jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="steering_run"
    )
    rerun_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reruns"
    )
    visibility = models.CharField(
        max_length=10, choices=Visibility.choices, default=Visibility.PRIVATE
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = SteeringRunQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["subgraph", "-created_at"], name="steeringrun_subgraph_recent"),
            models.Index(fields=["graph", "-created_at"], name="steeringrun_graph_recent"),
            models.Index(fields=["owner", "-created_at"], name="steeringrun_owner_recent"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} run {self.id}"

    @property
    def status(self) -> str:
        if self.result is not None:
            return "succeeded"
        return self.job.status if self.job is not None else "failed"

    def can_edit(self, user: User) -> bool:
        owner = user is not None and user.is_authenticated and self.owner_id == user.pk
        return bool(owner or is_staff(user))

    def links(self) -> dict[str, str]:
        """Where the run is read (what its job's ``run`` field and ``done`` event point at)."""
        return {"id": str(self.id), "url": reverse("api-steering-run", kwargs={"run_id": self.id})}
