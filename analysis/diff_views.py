"""``GET /api/v1/graph-diff?a=<model>/<slug>&b=<model>/<slug>``: the diff of two graphs.

Both graphs must be ones the caller may open (else 404, as a graph's own page is), of one model
and one transcoder set (else 400 naming ``b``). The computation is analysis/diff.py's; the answer
is revalidated with an ETag made of both artifacts' hashes, so reopening a comparison costs a 304.
The prepared graphs and the encoded diff are kept in memory (analysis/diff_cache.py), so another
request for the pair, from anyone who may see both, or one comparing either graph with a third,
does not read and parse the artifacts again.
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.http import HttpResponse, HttpResponseBase
from django.shortcuts import get_object_or_404
from django.utils.cache import patch_vary_headers
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.views import APIView

from analysis import diff_cache
from analysis.diff import STATUSES, diff_prepared
from core.api import query_param
from graphs.models import Graph

DEFAULT_MAX_EDGES = 5000
MAX_EDGES = 200_000
_REF = re.compile(r"([-a-zA-Z0-9_]{1,100})/([-a-zA-Z0-9_]{1,100})")


class GraphRefSerializer(serializers.Serializer[Any]):
    model = serializers.CharField()
    slug = serializers.CharField()
    title = serializers.CharField()
    prompt = serializers.CharField()
    prompt_tokens = serializers.ListField(child=serializers.CharField())
    page_url = serializers.CharField()
    url = serializers.CharField()
    artifact_url = serializers.CharField()


class AlignedPairSerializer(serializers.Serializer[Any]):
    a = serializers.IntegerField(help_text="Position in A.")
    b = serializers.IntegerField(help_text="Position in B.")
    same_token = serializers.BooleanField()


class DiffNodeSerializer(serializers.Serializer[Any]):
    kind = serializers.ChoiceField(choices=["feature", "error", "token", "logit"])
    status = serializers.ChoiceField(choices=STATUSES)
    id_a = serializers.CharField(allow_null=True, help_text="Node id in A (null: only in B).")
    id_b = serializers.CharField(allow_null=True, help_text="Node id in B (null: only in A).")
    layer = serializers.IntegerField(allow_null=True)
    feature = serializers.IntegerField(allow_null=True, help_text="Feature index (features).")
    token = serializers.IntegerField(allow_null=True, help_text="Vocabulary id (tokens, logits).")
    pos_a = serializers.IntegerField(
        allow_null=True,
        help_text="Position in A; for a node only in B, the A position aligned with its own "
        "(null when none is).",
    )
    pos_b = serializers.IntegerField(allow_null=True)
    # DRF takes declared fields off the class, so these names do not shadow Field attributes.
    label = serializers.CharField(allow_blank=True)  # type: ignore[assignment]
    influence_a = serializers.FloatField(allow_null=True)
    influence_b = serializers.FloatField(allow_null=True)
    delta_influence = serializers.FloatField(
        allow_null=True,
        help_text="influence_b - influence_a (cumulative fraction: negative is more influential "
        "in B); a missing side counts as 1.0.",
    )
    activation_a = serializers.FloatField(allow_null=True)
    activation_b = serializers.FloatField(allow_null=True)
    delta_activation = serializers.FloatField(
        allow_null=True, help_text="activation_b - activation_a; null unless in both."
    )
    probability_a = serializers.FloatField(allow_null=True, help_text="Logits only.")
    probability_b = serializers.FloatField(allow_null=True, help_text="Logits only.")
    patch = serializers.DictField(
        allow_null=True,
        help_text="The intervention (POST /api/v1/intervene on graph A) that sets this feature "
        "to its activation in B, or ablates it when B's graph lacks it; null when nothing "
        "differs or it cannot be patched.",
    )


class DiffEdgeSerializer(serializers.Serializer[Any]):
    source = serializers.IntegerField(help_text="Index into nodes.")  # type: ignore[assignment]
    target = serializers.IntegerField(help_text="Index into nodes.")
    status = serializers.ChoiceField(choices=STATUSES)
    weight_a = serializers.FloatField(allow_null=True)
    weight_b = serializers.FloatField(allow_null=True)
    delta_weight = serializers.FloatField(help_text="weight_b - weight_a, a missing edge as 0.")


class GraphDiffSerializer(serializers.Serializer[Any]):
    a = GraphRefSerializer()
    b = GraphRefSerializer()
    alignment = AlignedPairSerializer(many=True)
    summary = serializers.DictField(
        child=serializers.DictField(child=serializers.IntegerField()),
        help_text="Counts by status: per node kind (feature, error, token, logit) and for edges.",
    )
    nodes = DiffNodeSerializer(many=True, help_text="Sorted by |delta_influence|, unknown last.")
    edges = DiffEdgeSerializer(many=True, help_text="The max_edges that changed most.")
    edges_total = serializers.IntegerField(help_text="Edges in A or B.")
    patch_limit = serializers.IntegerField(help_text="Most features one intervention run takes.")


def _graph(request: Request, name: str) -> Graph:
    raw = query_param(request, name, max_length=201)
    match = _REF.fullmatch(raw)
    if match is None:
        raise ValidationError({name: "expected <model slug>/<graph slug>"})
    model, slug = match.groups()
    return get_object_or_404(
        Graph.objects.visible_to(request.user).select_related("model", "transcoder_set"),
        model__slug=model,
        slug=slug,
    )


def _max_edges(request: Request) -> int:
    raw = query_param(request, "max_edges", max_length=10)
    if not raw:
        return DEFAULT_MAX_EDGES
    if not raw.isdigit() or int(raw) > MAX_EDGES:
        raise ValidationError({"max_edges": f"expected an integer from 0 to {MAX_EDGES:,}"})
    return int(raw)


def _ref(graph: Graph) -> dict[str, Any]:
    return {
        **graph.links(),
        "title": graph.title,
        "prompt": graph.prompt,
        "prompt_tokens": graph.prompt_tokens,
    }


def _set_name(graph: Graph) -> str:
    return repr(graph.transcoder_set.slug) if graph.transcoder_set is not None else "none"


def _check_comparable(a: Graph, b: Graph) -> None:
    if a.model_id != b.model_id:
        raise ValidationError(
            {
                "b": f"B is a graph of model {b.model.slug!r}, A of {a.model.slug!r}: a diff "
                "compares graphs of one model"
            }
        )
    if a.transcoder_set_id != b.transcoder_set_id:
        raise ValidationError(
            {
                "b": f"B's transcoder set is {_set_name(b)}, A's is {_set_name(a)}: a diff "
                "compares graphs of one transcoder set"
            }
        )


def _json(data: dict[str, Any]) -> bytes:
    return JSONRenderer().render(data)


def _diff_json(a: Graph, b: Graph, max_edges: int) -> bytes:
    """The members of the answer that depend only on the two artifacts, as one encoded JSON
    object."""
    found = diff_prepared(
        diff_cache.prepared_graph(a.artifact_name, a.artifact_sha256),
        diff_cache.prepared_graph(b.artifact_name, b.artifact_sha256),
        max_edges=max_edges,
    )
    return _json(
        {
            "alignment": [vars(pair) for pair in found.alignment],
            "summary": found.summary,
            "nodes": found.nodes,
            "edges": found.edges,
            "edges_total": found.edges_total,
        }
    )


def _body(a: Graph, b: Graph, max_edges: int) -> bytes:
    """The answer: the graphs' own fields (titles change without a new artifact) around the
    kept diff, spliced as encoded JSON objects so the diff is not encoded again."""
    key = (a.artifact_name, a.artifact_sha256, b.artifact_name, b.artifact_sha256, max_edges)
    middle = diff_cache.encoded(key, lambda: _diff_json(a, b, max_edges))
    head = _json({"a": _ref(a), "b": _ref(b)})
    tail = _json({"patch_limit": settings.STEERING_MAX_INTERVENTIONS})
    return b"".join([head[:-1], b",", middle[1:-1], b",", tail[1:]])


class GraphDiffView(APIView):
    """The diff of two graphs of one model and transcoder set: positions aligned by their
    tokens, every node and edge shared, only in A or only in B, with its change (docs/analysis.md)."""

    @extend_schema(
        parameters=[
            OpenApiParameter("a", str, required=True, description="Graph A: `<model>/<slug>`."),
            OpenApiParameter("b", str, required=True, description="Graph B: `<model>/<slug>`."),
            OpenApiParameter(
                "max_edges",
                int,
                description=f"Edges returned, those that changed most first (0-{MAX_EDGES:,}; "
                f"default {DEFAULT_MAX_EDGES:,}).",
            ),
        ],
        responses={200: GraphDiffSerializer, 304: OpenApiResponse(description="Not modified.")},
    )
    def get(self, request: Request) -> HttpResponseBase:
        a = _graph(request, "a")
        b = _graph(request, "b")
        max_edges = _max_edges(request)
        _check_comparable(a, b)
        etag = f'"diff-{a.artifact_sha256[:20]}-{b.artifact_sha256[:20]}-{max_edges}"'
        header = request.META.get("HTTP_IF_NONE_MATCH", "")
        if etag in {tag.strip().removeprefix("W/") for tag in header.split(",")}:
            response: HttpResponseBase = HttpResponse(status=304)
        else:
            response = HttpResponse(_body(a, b, max_edges), content_type="application/json")
        response["ETag"] = etag
        # Revalidate every time: either graph's visibility can change.
        response["Cache-Control"] = "private, no-cache"
        patch_vary_headers(response, ["Cookie", "Authorization"])
        return response
