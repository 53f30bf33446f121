from __future__ import annotations

import time
from typing import Any, cast

from django.conf import settings
from django.contrib.postgres.search import SearchQuery, SearchRank
from django.db.models import Exists, F, Max, OuterRef, Prefetch, Q
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, permissions, serializers
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import LookupThrottle, WriteThrottle, query_param
from core.visibility import Visibility, is_staff
from features import services
from features.keys import parse_short
from features.models import Explanation, Feature, LanguageModel
from features.serializers import (
    ExplanationSerializer,
    FeatureSearchResultSerializer,
    FeatureSerializer,
    LanguageModelSerializer,
    LookupRequestSerializer,
    LookupResponseSerializer,
)

_MAX_INDEX = 2**31 - 1


class ModelListView(generics.ListAPIView[LanguageModel]):
    """Language models with their transcoder sets."""

    serializer_class = LanguageModelSerializer

    def get_queryset(self) -> Any:
        return services.models_for(self.request.user)


class ModelDetailView(generics.RetrieveAPIView[LanguageModel]):
    serializer_class = LanguageModelSerializer
    lookup_field = "slug"

    def get_queryset(self) -> Any:
        return LanguageModel.objects.visible_to(self.request.user).prefetch_related(
            "transcoder_sets"
        )


def _int(value: Any, path: str, low: int, high: int, errors: dict[str, str]) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        errors[path] = "expected an integer"
        return 0
    if not low <= value <= high:
        errors[path] = f"must be between {low} and {high}"
    return value


def parse_lookup_body(data: Any) -> tuple[list[services.FeatureKey], set[str], int]:
    """Check a lookup body by hand: fast for 10,000 keys, and every error names its field."""
    if not isinstance(data, dict):
        raise ValidationError({"non_field_errors": "expected a JSON object"})
    raw = data.get("features")
    limit = settings.FEATURE_LOOKUP_MAX_KEYS
    if not isinstance(raw, list) or not raw:
        raise ValidationError(
            {"features": "expected a non-empty list of {model, set, layer, index}"}
        )
    if len(raw) > limit:
        raise ValidationError({"features": f"at most {limit:,} keys per request, got {len(raw):,}"})
    include = data.get("include", list(services.DEFAULT_INCLUDE))
    if not isinstance(include, list) or any(i not in services.INCLUDE_CHOICES for i in include):
        raise ValidationError(
            {"include": f"expected a list of {', '.join(services.INCLUDE_CHOICES)}"}
        )
    errors: dict[str, str] = {}
    max_examples = _int(data.get("max_activations", 5), "max_activations", 0, 50, errors)
    keys: list[services.FeatureKey] = []
    for i, item in enumerate(raw):
        path = f"features[{i}]"
        if not isinstance(item, dict):
            errors[path] = "expected an object with model, set, layer, index"
        else:
            model, set_slug = item.get("model"), item.get("set")
            if not isinstance(model, str) or not 0 < len(model) <= 100 or "\x00" in model:
                errors[f"{path}.model"] = "expected a model slug"
            if not isinstance(set_slug, str) or not 0 < len(set_slug) <= 100 or "\x00" in set_slug:
                errors[f"{path}.set"] = "expected a transcoder set slug"
            layer = _int(item.get("layer"), f"{path}.layer", 0, 10_000, errors)
            index = _int(item.get("index"), f"{path}.index", 0, _MAX_INDEX, errors)
            if not errors:
                keys.append(services.FeatureKey(str(model), str(set_slug), layer, index))
        if len(errors) >= 20:
            break
    if errors:
        raise ValidationError(errors)
    return keys, set(include), max_examples


class FeatureLookupView(APIView):
    """Bulk feature lookup: up to 10,000 keys, results in request order, unknown keys in
    ``missing``. Include ``explanations``, ``logits`` (default), ``activations`` (top examples,
    ``max_activations`` of them) and ``histogram``."""

    throttle_classes = [LookupThrottle]

    @extend_schema(request=LookupRequestSerializer, responses={200: LookupResponseSerializer})
    def post(self, request: Request) -> HttpResponse:
        started = time.perf_counter()
        keys, include, max_examples = parse_lookup_body(request.data)
        parsed = time.perf_counter()
        result = services.lookup(
            keys, user=request.user, include=include, max_examples=max_examples
        )
        done = time.perf_counter()
        response = HttpResponse(result.to_json(), content_type="application/json")
        # Server-side timings for the benchmark and for people watching the network tab.
        response["Server-Timing"] = (
            f"parse;dur={(parsed - started) * 1000:.1f}, db;dur={(done - parsed) * 1000:.1f}"
        )
        return response


def _feature_or_404(request: Request, model: str, set_slug: str, layer: int, index: int) -> Feature:
    return get_object_or_404(
        Feature.objects.visible_to(request.user),
        transcoder_set__model__slug=model,
        transcoder_set__slug=set_slug,
        layer=layer,
        index=index,
    )


class FeatureDetailView(APIView):
    """One feature with its explanations, logits, histogram and top activation examples."""

    @extend_schema(responses={200: FeatureSerializer})
    def get(self, request: Request, model: str, set_slug: str, layer: int, index: int) -> Response:
        if index > _MAX_INDEX or layer > 10_000:
            raise NotFound()
        data = services.feature_detail(model, set_slug, layer, index, user=request.user)
        if data is None:
            raise NotFound()
        return Response(data)


class ExplanationCreateView(generics.ListCreateAPIView[Explanation]):
    """A feature's explanations; signed-in users add their own (plain text, attributed)."""

    serializer_class = ExplanationSerializer
    throttle_classes = [WriteThrottle]
    pagination_class = None

    def get_permissions(self) -> list[Any]:
        if self.request.method == "POST":
            return [permissions.IsAuthenticated()]
        return [permissions.AllowAny()]

    def _feature(self) -> Feature:
        kw = self.kwargs
        if kw["index"] > _MAX_INDEX or kw["layer"] > 10_000:
            raise NotFound()
        return _feature_or_404(self.request, kw["model"], kw["set_slug"], kw["layer"], kw["index"])

    def get_queryset(self) -> Any:
        return self._feature().explanations.select_related("author")

    def perform_create(self, serializer: serializers.BaseSerializer[Explanation]) -> None:
        serializer.save(feature=self._feature(), author=self.request.user, method="human")


_SEARCH_PARAMS = [
    OpenApiParameter(
        "q", str, description="Words to find in explanations (ranked full-text), or `L12/3456`."
    ),
    OpenApiParameter("model", str),
    OpenApiParameter("set", str),
    OpenApiParameter("layer", int),
    OpenApiParameter("logit", str, description="A token among the feature's top logits."),
    OpenApiParameter("min_density", float),
    OpenApiParameter("max_density", float),
    OpenApiParameter(
        "min_score",
        float,
        description="Only features with an explanation scored at least this (simulation "
        "score, -1..1); with `q`, the matching explanation itself.",
    ),
]


class FeatureSearchView(generics.ListAPIView[Feature]):
    """Search features by explanation text (ranked), top-logit token, layer and density."""

    serializer_class = FeatureSearchResultSerializer

    def _float(self, name: str) -> float | None:
        raw = self.request.query_params.get(name)
        if raw in (None, ""):
            return None
        try:
            value = float(raw)
        except ValueError:
            raise ValidationError({name: "expected a number"}) from None
        if value != value or value in (float("inf"), float("-inf")):
            raise ValidationError({name: "expected a finite number"})
        return value

    @extend_schema(parameters=_SEARCH_PARAMS)
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        text = query_param(request, "q")
        if not text or parse_short(text) is not None:
            return super().get(request, *args, **kwargs)
        # Words: rank explanation hits first, grouped by feature on narrow rows, and load only
        # the page's features. (Joining every hit's feature row first took over a second for a
        # common word among a million explanations.)
        query = SearchQuery(text, config="english", search_type="websearch")
        hits = (
            Explanation.objects.filter(self._filters("feature__"), search_vector=query)
            .filter(self._min_score("score__gte"))
            .values("feature_id")
            .annotate(rank=Max(SearchRank(F("search_vector"), query)))
            .order_by("-rank", "feature_id")
        )
        page = cast(list[dict[str, Any]], self.paginate_queryset(hits))  # type: ignore[arg-type]
        matching = (
            Explanation.objects.filter(search_vector=query)
            .annotate(r=SearchRank(F("search_vector"), query))
            .order_by("-r", "id")
        )
        features: dict[int, Feature] = (
            Feature.objects.filter(id__in=[hit["feature_id"] for hit in page])
            .select_related("transcoder_set__model")
            .prefetch_related(Prefetch("explanations", queryset=matching))
            .in_bulk()
        )
        ordered: list[Feature] = []
        for hit in page:
            feature = features.get(hit["feature_id"])
            if feature is not None:  # None: deleted since the page was counted
                feature.rank = hit["rank"]  # type: ignore[attr-defined]
                ordered.append(feature)
        return self.get_paginated_response(self.get_serializer(ordered, many=True).data)

    def _min_score(self, lookup: str) -> Q:
        low = self._float("min_score")
        return Q() if low is None else Q(**{lookup: low})

    def _filters(self, prefix: str = "") -> Q:
        """Every filter but ``q`` (visibility included), as lookups from ``prefix``: "" for a
        Feature query, "feature__" for an Explanation query."""
        request = self.request
        q = Q()
        if not is_staff(request.user):
            q &= ~Q(**{f"{prefix}transcoder_set__model__visibility": Visibility.PRIVATE})
        if model := query_param(request, "model", max_length=100):
            q &= Q(**{f"{prefix}transcoder_set__model__slug": model})
        if set_slug := query_param(request, "set", max_length=100):
            q &= Q(**{f"{prefix}transcoder_set__slug": set_slug})
        if layer := query_param(request, "layer", max_length=10):
            if not layer.isdigit() or int(layer) > 10_000:
                raise ValidationError({"layer": "expected a non-negative integer"})
            q &= Q(**{f"{prefix}layer": int(layer)})
        if (low := self._float("min_density")) is not None:
            q &= Q(**{f"{prefix}density__gte": low})
        if (high := self._float("max_density")) is not None:
            q &= Q(**{f"{prefix}density__lte": high})
        if "logit" in request.query_params:
            # Not stripped: top-logit tokens often start with a space.
            logit = request.query_params["logit"][:200]
            if "\x00" in logit:
                raise ValidationError({"logit": "must not contain NUL characters"})
            if logit:
                q &= Q(**{f"{prefix}top_logits__contains": [logit]})
        return q

    def get_queryset(self) -> Any:
        """Without words: filters only, or the one feature ``q=L12/3456`` names."""
        qs = Feature.objects.filter(self._filters()).select_related("transcoder_set__model")
        scored = self._min_score("score__gte")
        if scored:
            qs = qs.filter(Exists(Explanation.objects.filter(scored, feature_id=OuterRef("pk"))))
        explanations = Explanation.objects.order_by(F("score").desc(nulls_last=True), "id")
        key = parse_short(query_param(self.request, "q"))
        if key is not None:
            # "L12/3456" in the search box means that feature, not words.
            return (
                qs.filter(layer=key[0], index=key[1])
                .order_by("transcoder_set_id")
                .prefetch_related(Prefetch("explanations", queryset=explanations))
            )
        qs = qs.order_by("transcoder_set_id", "layer", "index")
        return qs.prefetch_related(Prefetch("explanations", queryset=explanations))
