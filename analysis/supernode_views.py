"""``POST /graphs/{model}/{slug}/supernode-suggestions``: suggested supernodes for a graph.

A POST because the pruned view or the pins can be thousands of node ids, too many for a query
string; it writes nothing. Who may ask is who may see the graph (a private one is a 404).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from analysis import supernodes
from analysis.decoders import DecoderFileError, read_decoders
from core.api import LookupThrottle
from core.parsers import JSONParser
from features.models import Feature, TranscoderSet
from graphs import artifacts
from graphs.models import Graph
from graphs.serializers import MAX_PINNED

_DEFAULTS = supernodes.Settings()


class SuggestionRequestSerializer(serializers.Serializer[Any]):
    node_ids = serializers.ListField(
        child=serializers.CharField(max_length=100),
        max_length=MAX_PINNED,
        required=False,
        help_text="Group only these nodes (the pins, or what the pruned view shows); "
        "default: every feature of the graph. Ids not in the graph are ignored.",
    )
    threshold = serializers.FloatField(
        min_value=0.0,
        max_value=1.0,
        required=False,
        help_text=f"Lowest mean similarity of a group (default {_DEFAULTS.threshold}); "
        "higher gives fewer, tighter groups.",
    )


class SuggestionSerializer(serializers.Serializer[Any]):
    name = serializers.CharField()
    members = serializers.ListField(child=serializers.CharField())
    confidence = serializers.FloatField(help_text="Mean similarity of the members' pairs, 0-1.")
    evidence = serializers.DictField(
        child=serializers.FloatField(allow_null=True),
        help_text="Mean similarity per signal (edges_in, edges_out, decoder, explanation, "
        "logits) over the pairs that have it; null where none has it.",
    )
    layers = serializers.ListField(child=serializers.IntegerField(), min_length=2, max_length=2)
    positions = serializers.ListField(child=serializers.IntegerField(), min_length=2, max_length=2)


class SuggestionResponseSerializer(serializers.Serializer[Any]):
    suggestions = SuggestionSerializer(many=True)
    signals = serializers.DictField(
        child=serializers.BooleanField(),
        help_text="Which signals were available: decoder (the set's weights are on the web "
        "machine), explanation, logits; edge profiles always are.",
    )
    n_candidates = serializers.IntegerField(help_text="Feature nodes considered.")
    threshold = serializers.FloatField()


def _source_path(transcoder_set: TranscoderSet) -> Path | None:
    if not transcoder_set.source or "://" in transcoder_set.source:
        return None
    path = Path(transcoder_set.source)
    return path if path.is_absolute() else Path(settings.BASE_DIR) / path


def _texts(
    transcoder_set: TranscoderSet, keys: set[tuple[int, int]]
) -> dict[tuple[int, int], supernodes.FeatureText]:
    by_layer: dict[int, list[int]] = {}
    for layer, index in keys:
        by_layer.setdefault(layer, []).append(index)
    out = {}
    for layer, indices in by_layer.items():
        rows = Feature.objects.filter(
            transcoder_set=transcoder_set, layer=layer, index__in=indices
        ).values_list("index", "top_explanations", "top_logits")
        for index, explanations, logits in rows:
            text = explanations[0]["text"] if explanations else ""
            out[(layer, index)] = supernodes.FeatureText(
                text, tuple(str(t) for t in (logits or [])[:10])
            )
    return out


def _decoders(
    transcoder_set: TranscoderSet, keys: set[tuple[int, int]]
) -> dict[tuple[int, int], Any]:
    source = _source_path(transcoder_set)
    if source is None or not source.exists():
        return {}
    try:
        return read_decoders(source, keys)
    except (DecoderFileError, OSError):
        # A broken weights file costs the signal, not the answer.
        return {}


class SupernodeSuggestionsView(APIView):
    """Suggested supernodes: groups of features with similar edges, decoder directions,
    explanations and top logits, at the same or neighbouring layers and positions."""

    parser_classes = [JSONParser]
    throttle_classes = [LookupThrottle]

    @extend_schema(
        request=SuggestionRequestSerializer, responses={200: SuggestionResponseSerializer}
    )
    def post(self, request: Request, model: str, slug: str) -> Response:
        started = time.perf_counter()
        graph = get_object_or_404(
            Graph.objects.visible_to(request.user).select_related("transcoder_set"),
            model__slug=model,
            slug=slug,
        )
        form = SuggestionRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        threshold = form.validated_data.get("threshold", _DEFAULTS.threshold)
        nodes, links = artifacts.nodes_and_links(graph.artifact_name, graph.artifact_sha256)
        features = supernodes.feature_nodes(nodes)
        node_ids = form.validated_data.get("node_ids")
        if node_ids is not None:
            wanted = set(node_ids)
            features = [f for f in features if f.node_id in wanted]
        keys = {(f.layer, f.index) for f in features}
        decoders, texts = {}, {}
        if graph.transcoder_set is not None and keys:
            decoders = _decoders(graph.transcoder_set, keys)
            texts = _texts(graph.transcoder_set, keys)
        loaded = time.perf_counter()
        found = supernodes.suggest(
            nodes,
            links,
            node_ids=[f.node_id for f in features],
            decoders=decoders,
            texts=texts,
            tokens=graph.prompt_tokens or [],
            settings=supernodes.Settings(threshold=threshold),
        )
        done = time.perf_counter()
        body = SuggestionResponseSerializer(
            {
                "suggestions": [s.to_dict() for s in found],
                "signals": {
                    "decoder": bool(decoders),
                    "explanation": any(t.explanation for t in texts.values()),
                    "logits": any(t.top_logits for t in texts.values()),
                },
                "n_candidates": len(features),
                "threshold": threshold,
            }
        ).data
        response = Response(body)
        response["Server-Timing"] = (
            f"load;dur={(loaded - started) * 1000:.1f}, group;dur={(done - loaded) * 1000:.1f}"
        )
        return response
