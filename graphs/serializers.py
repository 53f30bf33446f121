"""Thin serializers for graphs and subgraphs: shapes and input bounds, no queries of their own."""

from __future__ import annotations

import math
from typing import Any

from django.urls import reverse
from rest_framework import serializers

from contract.params import INTERVENTION_ACTIONS
from core.api import documented, slug_field
from core.visibility import Visibility
from graphs import artifacts
from graphs.models import Graph, GraphNode, Subgraph

MAX_LABEL_CHARS = 200
MAX_NODE_ID_CHARS = 100
MAX_PINNED = 5000
MAX_SUPERNODES = 1000
MAX_THRESHOLDS = 10

# What the validate_* methods of SubgraphSerializer accept, for the OpenAPI schema.
_NODE_ID = {"type": "string", "minLength": 1, "maxLength": MAX_NODE_ID_CHARS}
_LABEL = {"type": "string", "maxLength": MAX_LABEL_CHARS}
PINNED_IDS_SCHEMA = {"type": "array", "items": _NODE_ID, "maxItems": MAX_PINNED}
SUPERNODES_SCHEMA = {
    "type": "array",
    "maxItems": MAX_SUPERNODES,
    "description": "Each supernode is [label, node_id, ...]: its label (at most "
    f"{MAX_LABEL_CHARS} characters), then its members' node ids.",
    "items": {
        "type": "array",
        "items": {"type": "string"},
        "minItems": 1,
        "maxItems": MAX_PINNED + 1,
    },
}
NODE_LABELS_SCHEMA = {
    "type": "object",
    "description": "{node_id: label}.",
    "additionalProperties": _LABEL,
    "maxProperties": MAX_PINNED,
}
TEST_ROWS_SCHEMA = {
    "type": "array",
    "maxItems": MAX_PINNED,
    "items": {
        "type": "object",
        "properties": {
            "ids": {"type": "array", "items": _NODE_ID, "minItems": 1, "maxItems": MAX_PINNED},
            "action": {"type": "string", "enum": list(INTERVENTION_ACTIONS)},
            "value": {"type": "number"},
            "all_positions": {"type": "boolean"},
        },
        "required": ["ids", "action"],
        "additionalProperties": False,
    },
}
THRESHOLDS_SCHEMA = {
    "type": "object",
    "description": "Named finite numbers (keys at most 50 characters).",
    "additionalProperties": {"type": "number"},
    "maxProperties": MAX_THRESHOLDS,
}


class GraphSerializer(serializers.ModelSerializer[Graph]):
    model: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )
    transcoder_set: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )
    owner: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )
    urls = serializers.SerializerMethodField()
    etag = serializers.CharField(source="artifact_sha256", read_only=True)

    class Meta:
        model = Graph
        fields = [
            "model",
            "transcoder_set",
            "slug",
            "title",
            "prompt",
            "prompt_tokens",
            "target",
            "generation_settings",
            "pruning_settings",
            "scores",
            "n_nodes",
            "n_links",
            "n_features",
            "owner",
            "visibility",
            "featured",
            "source",
            "created_at",
            "artifact_bytes",
            "artifact_gzip_bytes",
            "etag",
            "urls",
        ]
        read_only_fields = fields

    def get_urls(self, graph: Graph) -> dict[str, str]:
        # Optimization: f-strings, not reverse(), for list pages of many graphs.
        base = f"/api/v1/graphs/{graph.model.slug}/{graph.slug}"
        return {
            "api": base,
            "artifact": f"{base}/artifact",
            "neighbourhood": f"{base}/neighbourhood",
            "subgraphs": f"{base}/subgraphs",
            "page": f"/graphs/{graph.model.slug}/{graph.slug}",
        }


class GraphUpdateSerializer(serializers.ModelSerializer[Graph]):
    class Meta:
        model = Graph
        fields = ["title", "visibility", "featured"]

    def validate_featured(self, value: bool) -> bool:
        request = self.context.get("request")
        if value and not (request and request.user.is_staff):
            raise serializers.ValidationError("only staff can feature a graph")
        return value


class GraphUploadSerializer(serializers.Serializer[Any]):
    file = serializers.FileField(
        help_text="circuit-tracer / Neuronpedia graph JSON (optionally gzipped)."
    )
    model = serializers.SlugField(
        required=False, help_text="Model slug; default: the file's metadata.scan."
    )
    transcoder_set = serializers.SlugField(required=False)
    slug = slug_field(required=False, help_text="Default: metadata.slug or the prompt.")
    title = serializers.CharField(required=False, max_length=200, allow_blank=True)
    visibility = serializers.ChoiceField(choices=Visibility.choices, default=Visibility.PRIVATE)


class FeatureGraphSerializer(serializers.ModelSerializer[GraphNode]):
    """A graph that contains a feature, with where and how strongly it appears there."""

    graph = GraphSerializer(read_only=True)

    class Meta:
        model = GraphNode
        fields = ["graph", "node_id", "position", "activation", "influence"]


def _check_id(value: Any, where: str) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_NODE_ID_CHARS or "\x00" in value:
        raise serializers.ValidationError(f"{where}: expected a node id (1-100 characters)")
    return value


def _check_label(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise serializers.ValidationError(f"{where}: a label must be a string")
    if len(value) > MAX_LABEL_CHARS:
        raise serializers.ValidationError(
            f"{where}: a label is at most {MAX_LABEL_CHARS} characters"
        )
    if "\x00" in value:
        raise serializers.ValidationError(f"{where}: a label must not contain NUL characters")
    return value


class SubgraphSerializer(serializers.ModelSerializer[Subgraph]):
    graph = serializers.SerializerMethodField()
    owner: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )
    url = serializers.SerializerMethodField()
    pinned_ids = documented(serializers.JSONField, PINNED_IDS_SCHEMA, required=False)
    supernodes = documented(serializers.JSONField, SUPERNODES_SCHEMA, required=False)
    node_labels = documented(serializers.JSONField, NODE_LABELS_SCHEMA, required=False)
    thresholds = documented(serializers.JSONField, THRESHOLDS_SCHEMA, required=False)
    test_rows = documented(serializers.JSONField, TEST_ROWS_SCHEMA, required=False)

    class Meta:
        model = Subgraph
        fields = [
            "share_slug",
            "graph",
            "owner",
            "title",
            "pinned_ids",
            "supernodes",
            "node_labels",
            "thresholds",
            "clicked_id",
            "test_rows",
            "notes",
            "visibility",
            "version",
            "created_at",
            "updated_at",
            "url",
        ]
        read_only_fields = ["share_slug", "graph", "owner", "version", "created_at", "updated_at"]
        extra_kwargs = {"notes": {"max_length": 10_000}, "clicked_id": {"max_length": 100}}

    def get_graph(self, subgraph: Subgraph) -> dict[str, str]:
        return {"model": subgraph.graph.model.slug, "slug": subgraph.graph.slug}

    def get_url(self, subgraph: Subgraph) -> str:
        return reverse("api-subgraph", kwargs={"share_slug": subgraph.share_slug})

    def validate_title(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("a subgraph needs a title")
        return value.strip()

    def validate_pinned_ids(self, value: Any) -> list[str]:
        if not isinstance(value, list):
            raise serializers.ValidationError("expected a list of node ids")
        if len(value) > MAX_PINNED:
            raise serializers.ValidationError(f"at most {MAX_PINNED} pinned nodes")
        return [_check_id(v, f"[{i}]") for i, v in enumerate(value)]

    def validate_supernodes(self, value: Any) -> list[list[str]]:
        if not isinstance(value, list) or len(value) > MAX_SUPERNODES:
            raise serializers.ValidationError(
                f"expected a list of at most {MAX_SUPERNODES} [label, node_id, ...] lists"
            )
        out = []
        for i, group in enumerate(value):
            if not isinstance(group, list) or len(group) < 2 or not isinstance(group[0], str):
                raise serializers.ValidationError(
                    f"[{i}]: expected [label, node_id, ...] with at least one node id"
                )
            _check_label(group[0], f"[{i}]")
            if len(group) > MAX_PINNED + 1:
                raise serializers.ValidationError(f"[{i}]: too many nodes in one supernode")
            out.append(
                [group[0], *(_check_id(v, f"[{i}][{j + 1}]") for j, v in enumerate(group[1:]))]
            )
        return out

    def validate_node_labels(self, value: Any) -> dict[str, str]:
        if not isinstance(value, dict):
            raise serializers.ValidationError("expected an object {node_id: label}")
        if len(value) > MAX_PINNED:
            raise serializers.ValidationError(f"at most {MAX_PINNED} labels")
        for key, label in value.items():
            _check_id(key, "key")
            _check_label(label, key)
        return dict(value)

    def validate_test_rows(self, value: Any) -> list[dict[str, Any]]:
        if not isinstance(value, list) or len(value) > MAX_PINNED:
            raise serializers.ValidationError(f"expected a list of at most {MAX_PINNED} rows")
        rows = []
        for i, row in enumerate(value):
            where = f"[{i}]"
            if not isinstance(row, dict) or set(row) - {"ids", "action", "value", "all_positions"}:
                raise serializers.ValidationError(
                    f"{where}: expected {{ids, action, value, all_positions}}"
                )
            ids = row.get("ids")
            if not isinstance(ids, list) or not 0 < len(ids) <= MAX_PINNED:
                raise serializers.ValidationError(f"{where}.ids: expected a list of node ids")
            if row.get("action") not in INTERVENTION_ACTIONS:
                raise serializers.ValidationError(
                    f"{where}.action: one of {', '.join(INTERVENTION_ACTIONS)}"
                )
            number = row.get("value", 0)
            if (
                isinstance(number, bool)
                or not isinstance(number, int | float)
                or not math.isfinite(number)
            ):
                raise serializers.ValidationError(f"{where}.value: expected a finite number")
            everywhere = row.get("all_positions", False)
            if not isinstance(everywhere, bool):
                raise serializers.ValidationError(f"{where}.all_positions: expected true or false")
            rows.append(
                {
                    "ids": [_check_id(v, f"{where}.ids[{j}]") for j, v in enumerate(ids)],
                    "action": row["action"],
                    "value": float(number),
                    "all_positions": everywhere,
                }
            )
        return rows

    def validate_thresholds(self, value: Any) -> dict[str, float]:
        if not isinstance(value, dict) or len(value) > MAX_THRESHOLDS:
            raise serializers.ValidationError(
                f"expected an object of at most {MAX_THRESHOLDS} numbers"
            )
        for key, number in value.items():
            if (
                not isinstance(key, str)
                or len(key) > 50
                or "\x00" in key
                or isinstance(number, bool)
                or not isinstance(number, int | float)
                or not math.isfinite(number)
            ):
                raise serializers.ValidationError(f"{str(key)[:50]}: expected a finite number")
        return dict(value)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """Every id must be a node of the graph: a typo would otherwise replace the saved pins
        with ids that show nothing (the graph is the view's, or the row's on an update)."""
        graph: Graph | None = self.context.get("graph") or getattr(self.instance, "graph", None)
        if graph is None:
            return attrs
        known = artifacts.node_ids(graph.artifact_name, graph.artifact_sha256)
        named: list[tuple[str, str]] = [
            (f"pinned_ids[{i}]", v) for i, v in enumerate(attrs.get("pinned_ids", []))
        ]
        for i, group in enumerate(attrs.get("supernodes", [])):
            named += [(f"supernodes[{i}][{j + 1}]", v) for j, v in enumerate(group[1:])]
        named += [("node_labels", key) for key in attrs.get("node_labels", {})]
        if attrs.get("clicked_id"):
            named.append(("clicked_id", attrs["clicked_id"]))
        for where, node_id in named:
            if node_id not in known:
                raise serializers.ValidationError(
                    {where: f"{node_id!r} is not a node of graph {graph.slug!r}"}
                )
        return attrs


class SubgraphWriteSerializer(SubgraphSerializer):
    """Updates may name the version they read in the body instead of If-Match."""

    version = serializers.IntegerField(required=False, min_value=1)

    class Meta(SubgraphSerializer.Meta):
        read_only_fields = ["share_slug", "graph", "owner", "created_at", "updated_at"]


class NeighbourhoodSerializer(serializers.Serializer[Any]):
    node_ids = serializers.ListField(child=serializers.CharField())
    nodes = serializers.ListField(child=serializers.DictField())
    links = serializers.ListField(child=serializers.DictField())
    in_degree = serializers.DictField(child=serializers.IntegerField())
    out_degree = serializers.DictField(child=serializers.IntegerField())
