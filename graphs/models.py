"""Attribution graphs, the index of their feature nodes, and saved subgraphs (annotations).

The graph itself (nodes and links) lives in Django storage as normalised, gzipped
circuit-tracer JSON (see graphs/artifacts.py); Postgres keeps its metadata and one ``GraphNode``
row per feature node, so "which graphs contain feature L/i, and where is it most influential" is
one indexed query.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse

from core.visibility import Visibility, is_staff
from features.models import LanguageModel, TranscoderSet

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

    User = AbstractBaseUser | AnonymousUser | None


def _visible_q(user: User, prefix: str = "") -> Q:
    """Rows this user may open: public, unlisted (link holders) or their own."""
    q = Q(**{f"{prefix}visibility__in": [Visibility.PUBLIC, Visibility.UNLISTED]})
    if user is not None and user.is_authenticated:
        q |= Q(**{f"{prefix}owner": user})
    return q


def _listed_q(user: User, prefix: str = "") -> Q:
    """Rows shown in lists to this user: public ones and their own (unlisted stay off lists)."""
    q = Q(**{f"{prefix}visibility": Visibility.PUBLIC})
    if user is not None and user.is_authenticated:
        q |= Q(**{f"{prefix}owner": user})
    return q


def _own_q(user: User) -> Q:
    if user is None or not user.is_authenticated:
        return Q(pk__in=[])
    return Q(owner=user)


def _others_q(q: Q) -> Q:
    return q & ~Q(model__visibility=Visibility.PRIVATE)


class GraphQuerySet(models.QuerySet["Graph"]):
    def visible_to(self, user: User) -> GraphQuerySet:
        """Graphs this user may open: their own, and others' public or unlisted ones (except
        on private models)."""
        if is_staff(user):
            return self
        return self.filter(_others_q(_visible_q(None)) | _own_q(user))

    def listed_for(self, user: User) -> GraphQuerySet:
        """Graphs shown in lists: their own and others' public ones (except on private models)."""
        if is_staff(user):
            return self
        return self.filter(_others_q(_listed_q(None)) | _own_q(user))

    def owned_by(self, user: User) -> GraphQuerySet:
        if user is None or not user.is_authenticated:
            return self.none()
        return self.filter(owner=user)

    def containing_feature(
        self, transcoder_set: TranscoderSet, layer: int, index: int
    ) -> GraphQuerySet:
        nodes = GraphNode.objects.filter(
            transcoder_set=transcoder_set, layer=layer, feature_index=index
        )
        return self.filter(id__in=nodes.values("graph_id"))


def default_share_slug() -> str:
    return secrets.token_urlsafe(9)


class Graph(models.Model):
    class Source(models.TextChoices):
        UPLOAD = "upload", "Uploaded"
        GENERATED = "generated", "Generated"
        IMPORTED = "imported", "Imported from a file"

    model = models.ForeignKey(LanguageModel, on_delete=models.PROTECT, related_name="graphs")
    transcoder_set = models.ForeignKey(
        TranscoderSet, null=True, blank=True, on_delete=models.PROTECT, related_name="graphs"
    )
    slug = models.SlugField(max_length=100)
    title = models.CharField(max_length=200, blank=True)
    prompt = models.TextField()
    prompt_tokens = models.JSONField(default=list)
    # What the graph explains when not the top logits: {"tokens": [...]} or {"logit_diff": [a, b]}.
    target = models.JSONField(null=True, blank=True)
    generation_settings = models.JSONField(default=dict, blank=True)
    pruning_settings = models.JSONField(default=dict, blank=True)
    # replacement_score, completeness_score, ... when known.
    scores = models.JSONField(default=dict, blank=True)
    n_nodes = models.PositiveIntegerField(default=0)
    n_links = models.PositiveIntegerField(default=0)
    n_features = models.PositiveIntegerField(default=0)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="graphs",
    )
    visibility = models.CharField(
        max_length=10, choices=Visibility.choices, default=Visibility.PRIVATE
    )
    featured = models.BooleanField(default=False, help_text="Shown on the home page.")
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.UPLOAD)
    # Normalised circuit-tracer JSON, gzipped; served as is with Content-Encoding: gzip.
    artifact = models.FileField(upload_to="graphs/", max_length=300)
    artifact_bytes = models.PositiveBigIntegerField(default=0, help_text="Uncompressed size.")
    artifact_gzip_bytes = models.PositiveBigIntegerField(default=0)
    artifact_sha256 = models.CharField(max_length=64, blank=True)
    # Optional research export (safetensors, full unpruned adjacency) written by the worker.
    raw_artifact = models.FileField(upload_to="graphs/raw/", max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = GraphQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["model", "slug"], name="graph_slug_per_model")
        ]
        indexes = [
            models.Index(fields=["visibility", "-created_at"], name="graph_visibility_recent"),
            models.Index(fields=["owner", "-created_at"], name="graph_owner_recent"),
        ]

    def __str__(self) -> str:
        return f"{self.model.slug}/{self.slug}"

    @property
    def artifact_name(self) -> str:
        return self.artifact.name or ""

    @property
    def etag(self) -> str:
        return f'"{self.artifact_sha256}"'

    def links(self) -> dict[str, str]:
        """Where the graph is read: its explorer page, its API row and its artifact (what a job
        and a steering run point at)."""
        kwargs = {"model": self.model.slug, "slug": self.slug}
        return {
            "model": self.model.slug,
            "slug": self.slug,
            "page_url": reverse("graph-explorer", kwargs=kwargs),
            "url": reverse("api-graph", kwargs=kwargs),
            "artifact_url": reverse("api-graph-artifact", kwargs=kwargs),
        }

    def is_owned_by(self, user: User) -> bool:
        return bool(user is not None and user.is_authenticated and self.owner_id == user.pk)

    def can_edit(self, user: User) -> bool:
        return self.is_owned_by(user) or is_staff(user)


class GraphNode(models.Model):
    """One feature node of a graph (errors, tokens and logits are only in the artifact)."""

    graph = models.ForeignKey(Graph, on_delete=models.CASCADE, related_name="feature_nodes")
    # Denormalised from the graph so the "graphs containing L/i" index needs no join.
    transcoder_set = models.ForeignKey(
        TranscoderSet, null=True, on_delete=models.CASCADE, related_name="+"
    )
    node_id = models.CharField(max_length=100)
    layer = models.PositiveSmallIntegerField()
    position = models.PositiveIntegerField()
    feature_index = models.PositiveIntegerField()
    activation = models.FloatField(null=True)
    # circuit-tracer's cumulative influence: lower means more influential (0 is the top node).
    influence = models.FloatField(null=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["graph", "node_id"], name="graph_node_id_unique")
        ]
        indexes = [
            models.Index(
                fields=["transcoder_set", "layer", "feature_index", "influence"],
                name="graphnode_feature_influence",
            )
        ]

    def __str__(self) -> str:
        return f"{self.node_id} in graph {self.graph_id}"


class SubgraphQuerySet(models.QuerySet["Subgraph"]):
    def visible_to(self, user: User) -> SubgraphQuerySet:
        """A subgraph is visible when both it and its graph are."""
        if is_staff(user):
            return self
        return self.filter(_visible_q(user), graph__in=Graph.objects.visible_to(user))

    def listed_for(self, user: User) -> SubgraphQuerySet:
        if is_staff(user):
            return self
        return self.filter(_listed_q(user))


class Subgraph(models.Model):
    graph = models.ForeignKey(Graph, on_delete=models.CASCADE, related_name="subgraphs")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="subgraphs"
    )
    title = models.CharField(max_length=200)
    pinned_ids = models.JSONField(default=list, blank=True)
    # [[label, node_id, node_id, ...], ...] as in circuit-tracer's qParams.supernodes.
    supernodes = models.JSONField(default=list, blank=True)
    node_labels = models.JSONField(default=dict, blank=True)
    # {"node": 0.8, "edge": 0.98, "density": ...} as the explorer's sliders were set.
    thresholds = models.JSONField(default=dict, blank=True)
    clicked_id = models.CharField(max_length=100, blank=True)
    # The Test panel's rows as the user set them:
    # [{"ids": [node_id, ...], "action": "scale", "value": 2.0, "all_positions": false}, ...];
    # a row's ids are its supernode's members, or the one pinned node.
    test_rows = models.JSONField(default=list, blank=True)
    notes = models.TextField(blank=True)
    visibility = models.CharField(
        max_length=10, choices=Visibility.choices, default=Visibility.PRIVATE
    )
    share_slug = models.CharField(max_length=32, unique=True, default=default_share_slug)
    # Optimistic concurrency: every write must name the version it read.
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = SubgraphQuerySet.as_manager()

    class Meta:
        ordering = ["-updated_at", "-id"]
        indexes = [models.Index(fields=["graph", "-updated_at"], name="subgraph_graph_recent")]

    def __str__(self) -> str:
        return f"{self.title} ({self.share_slug})"

    def is_owned_by(self, user: User) -> bool:
        return bool(user is not None and user.is_authenticated and self.owner_id == user.pk)

    def can_edit(self, user: User) -> bool:
        return self.is_owned_by(user) or is_staff(user)
