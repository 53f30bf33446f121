from __future__ import annotations

import gzip
from typing import Any

from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.db.models import F
from django.http import HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.utils.cache import patch_vary_headers
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, permissions, status
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from contract.graph_binary import GraphBinaryError
from contract.graph_json import GraphValidationError
from core.api import (
    PayloadTooLarge,
    UploadThrottle,
    WriteThrottle,
    error_body,
    parse_if_match,
    query_param,
)
from core.parsers import JSONParser
from features.keys import parse_short
from features.models import LanguageModel, TranscoderSet
from graphs import artifacts, list_cache, services, sidecar
from graphs.models import Graph, GraphNode, Subgraph
from graphs.serializers import (
    FeatureGraphSerializer,
    GraphSerializer,
    GraphUpdateSerializer,
    GraphUploadSerializer,
    NeighbourhoodSerializer,
    SubgraphSerializer,
    SubgraphWriteSerializer,
)


def _graph_or_404(
    request: Request,
    model: str,
    slug: str,
    related: tuple[str, ...] = ("model", "transcoder_set", "owner"),
) -> Graph:
    """The graph, if this user may see it. ``related``: what the caller reads besides the
    graph's own row (the serializer needs all three; artifact reads only the model's slug)."""
    return get_object_or_404(
        Graph.objects.visible_to(request.user).select_related(*related),
        model__slug=model,
        slug=slug,
    )


def _validation_error(exc: GraphValidationError) -> Exception:
    if exc.too_large:
        return PayloadTooLarge({"error": str(exc), "detail": exc.errors})
    return ValidationError(exc.errors)


_LIST_PARAMS = [
    OpenApiParameter("model", str, description="Model slug."),
    OpenApiParameter("owner", str, description="Username, or `me`."),
    OpenApiParameter("q", str, description="Text in the prompt (case-insensitive)."),
    OpenApiParameter("feature", str, description="Graphs containing a feature: `L12/3456`."),
    OpenApiParameter("set", str, description="Transcoder set of `feature` (default: any)."),
    OpenApiParameter("featured", bool),
]


class GraphListView(generics.ListCreateAPIView[Graph]):
    """Graphs you can list (public ones and your own), newest first; upload one with POST.

    With ``feature``, only graphs containing that feature, most influential first."""

    serializer_class = GraphSerializer
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    def get_throttles(self) -> list[Any]:
        return [UploadThrottle()] if self.request.method == "POST" else []

    def get_permissions(self) -> list[Any]:
        if self.request.method == "POST":
            return [permissions.IsAuthenticated()]
        return [permissions.AllowAny()]

    @extend_schema(parameters=_LIST_PARAMS)
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return list_cache.answer(
            request, lambda: super(GraphListView, self).get(request, *args, **kwargs)
        )

    def get_queryset(self) -> Any:
        request = self.request
        user = request.user
        qs = Graph.objects.listed_for(user).select_related("model", "transcoder_set", "owner")
        if model := query_param(request, "model", max_length=100):
            qs = qs.filter(model__slug=model)
        owner = query_param(request, "owner", max_length=150)
        if owner == "me":
            qs = qs.owned_by(user)
        elif owner:
            qs = qs.filter(owner__username=owner)
        if text := query_param(request, "q"):
            qs = qs.filter(prompt__icontains=text)
        if query_param(request, "featured") in ("1", "true"):
            qs = qs.filter(featured=True)
        if feature := query_param(request, "feature", max_length=50):
            key = parse_short(feature)
            if key is None:
                raise ValidationError({"feature": "expected a feature like L12/3456"})
            nodes = GraphNode.objects.filter(layer=key[0], feature_index=key[1])
            if set_slug := query_param(request, "set", max_length=100):
                nodes = nodes.filter(transcoder_set__slug=set_slug)
            qs = qs.filter(id__in=nodes.values("graph_id"))
        return qs

    @extend_schema(
        request={"multipart/form-data": GraphUploadSerializer},
        responses={201: GraphSerializer},
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        limit = settings.GRAPH_UPLOAD_MAX_BYTES
        # Refuse a declared oversized body before reading it.
        declared = request.META.get("CONTENT_LENGTH") or "0"
        if declared.isdigit() and int(declared) > limit + 64 * 1024:
            raise PayloadTooLarge(
                {
                    "error": f"file: larger than the limit of {limit:,} bytes",
                    "detail": {"file": f"larger than the limit of {limit:,} bytes"},
                }
            )
        form = GraphUploadSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        upload = form.validated_data["file"]
        if upload.size is not None and upload.size > limit:
            raise PayloadTooLarge(
                {
                    "error": f"file: larger than the limit of {limit:,} bytes",
                    "detail": {"file": f"larger than the limit of {limit:,} bytes"},
                }
            )
        data = upload.read(limit + 1)
        try:
            graph = services.import_graph_bytes(
                data,
                model_slug=form.validated_data.get("model"),
                transcoder_set_slug=form.validated_data.get("transcoder_set"),
                slug=form.validated_data.get("slug"),
                owner=request.user,  # type: ignore[arg-type]
                visibility=form.validated_data["visibility"],
                title=form.validated_data.get("title", ""),
                name_privately=True,
            )
        except GraphValidationError as exc:
            raise _validation_error(exc) from None
        return Response(GraphSerializer(graph).data, status=status.HTTP_201_CREATED)


class GraphDetailView(generics.RetrieveUpdateDestroyAPIView[Graph]):
    """A graph's metadata. The owner (or staff) may change title/visibility or delete it."""

    serializer_class = GraphSerializer
    throttle_classes = [WriteThrottle]
    http_method_names = ["get", "patch", "delete", "head", "options"]

    def get_object(self) -> Graph:
        graph = _graph_or_404(self.request, self.kwargs["model"], self.kwargs["slug"])
        if self.request.method not in permissions.SAFE_METHODS and not graph.can_edit(
            self.request.user
        ):
            raise PermissionDenied("only the owner can change or delete this graph")
        return graph

    @extend_schema(request=GraphUpdateSerializer, responses={200: GraphSerializer})
    def patch(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        graph = self.get_object()
        form = GraphUpdateSerializer(
            graph, data=request.data, partial=True, context={"request": request}
        )
        form.is_valid(raise_exception=True)
        for key, value in form.validated_data.items():
            setattr(graph, key, value)
        graph.save(update_fields=list(form.validated_data))
        return Response(GraphSerializer(graph).data)

    def perform_destroy(self, instance: Graph) -> None:
        services.delete_graph(instance)


def _max_links(request: Request) -> int | None:
    """``?links=none`` -> 0, ``?max_links=N`` -> N, neither -> None (the whole graph)."""
    if query_param(request, "links", max_length=10) == "none":
        return 0
    raw = query_param(request, "max_links", max_length=10)
    if not raw:
        return None
    if not raw.isdigit() or int(raw) > 1_000_000:
        raise ValidationError({"max_links": "expected an integer from 0 to 1,000,000"})
    return int(raw)


def _accepts_gzip(request: Request) -> bool:
    return "gzip" in request.META.get("HTTP_ACCEPT_ENCODING", "")


def _etag_matches(request: Request, etag: str) -> bool:
    header = request.META.get("HTTP_IF_NONE_MATCH", "")
    tags = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    return etag in tags or "*" in tags


def _cache_headers(response: HttpResponseBase, graph: Graph) -> None:
    public = graph.visibility == "public"
    # Revalidate every time: visibility can change; the ETag makes that a cheap 304.
    response["Cache-Control"] = ("public" if public else "private") + ", no-cache"
    patch_vary_headers(response, ["Accept-Encoding", "Cookie", "Authorization"])


def _stored_gzip(request: Request, graph: Graph) -> HttpResponseBase:
    """The stored gzip bytes as they are. Most graphs are answered from memory (see
    ``artifacts.read_gzip_cached``); big ones are streamed from storage in chunks, through an
    async iterator under the ASGI server (a sync one would tie up a thread for the whole
    download) and a sync one otherwise (the test client, a WSGI server)."""
    if graph.artifact_gzip_bytes <= settings.ARTIFACT_STREAM_ABOVE_MB * 1024 * 1024:
        response: HttpResponseBase = HttpResponse(
            artifacts.read_gzip_cached(graph.artifact_name, graph.artifact_sha256),
            content_type="application/json",
        )
    else:
        chunks = (
            artifacts.aiter_gzip(graph.artifact_name)
            if isinstance(request._request, ASGIRequest)
            else artifacts.iter_gzip(graph.artifact_name)
        )
        response = StreamingHttpResponse(chunks, content_type="application/json")
        response["Content-Length"] = str(graph.artifact_gzip_bytes)
    response["Content-Encoding"] = "gzip"
    return response


class GraphArtifactView(generics.GenericAPIView[Graph]):
    """The graph JSON (circuit-tracer schema), gzip on the wire, with ETag/conditional GET.

    ``?subgraph=<share_slug>`` exports it with that subgraph's pins, supernodes and labels."""

    serializer_class = GraphSerializer

    @extend_schema(
        parameters=[
            OpenApiParameter("subgraph", str, description="Share slug of a subgraph to merge."),
            OpenApiParameter("download", bool, description="Send as an attachment."),
            OpenApiParameter(
                "links", str, enum=["none"], description="`none`: nodes only (big graphs)."
            ),
            OpenApiParameter(
                "max_links", int, description="Only the N strongest links; adds `links_total`."
            ),
        ],
        responses={200: OpenApiResponse(OpenApiTypes.OBJECT, description="Graph JSON"), 304: None},
    )
    def get(self, request: Request, model: str, slug: str) -> HttpResponseBase:
        graph = _graph_or_404(request, model, slug, related=("model",))
        share = query_param(request, "subgraph", max_length=32)
        if share:
            return self._annotated(request, graph, share)
        max_links = _max_links(request)
        if max_links is not None:
            return self._skeleton(request, graph, max_links)
        etag = graph.etag
        if _etag_matches(request, etag):
            response: HttpResponseBase = HttpResponse(status=304)
        elif _accepts_gzip(request):
            response = _stored_gzip(request, graph)
        else:
            body = gzip.decompress(
                artifacts.read_gzip_cached(graph.artifact_name, graph.artifact_sha256)
            )
            response = HttpResponse(body, content_type="application/json")
        response["ETag"] = etag
        _cache_headers(response, graph)
        if request.query_params.get("download") in ("1", "true"):
            response["Content-Disposition"] = (
                f'attachment; filename="{graph.model.slug}-{graph.slug}.json"'
            )
        return response

    def _skeleton(self, request: Request, graph: Graph, max_links: int) -> HttpResponseBase:
        etag = f'"{graph.artifact_sha256}-links{max_links}"'
        if _etag_matches(request, etag):
            response: HttpResponseBase = HttpResponse(status=304)
        else:
            packed = artifacts.skeleton(
                graph.artifact_name, graph.artifact_sha256, max_links=max_links
            )
            if _accepts_gzip(request):
                response = HttpResponse(packed, content_type="application/json")
                response["Content-Encoding"] = "gzip"
            else:
                response = HttpResponse(gzip.decompress(packed), content_type="application/json")
        response["ETag"] = etag
        _cache_headers(response, graph)
        return response

    def _annotated(self, request: Request, graph: Graph, share: str) -> HttpResponseBase:
        subgraph = (
            Subgraph.objects.visible_to(request.user)
            .filter(graph=graph, share_slug=share[:32])
            .first()
        )
        if subgraph is None:
            raise NotFound("no such subgraph of this graph")
        document = artifacts.with_annotations(
            artifacts.read_document(graph.artifact_name),
            pinned_ids=subgraph.pinned_ids,
            supernodes=subgraph.supernodes,
            node_labels=subgraph.node_labels,
            clicked_id=subgraph.clicked_id,
        )
        body = artifacts.encode(document)
        if _accepts_gzip(request):
            response = HttpResponse(gzip.compress(body, 6), content_type="application/json")
            response["Content-Encoding"] = "gzip"
        else:
            response = HttpResponse(body, content_type="application/json")
        response["ETag"] = (
            f'"{graph.artifact_sha256[:16]}-{subgraph.share_slug}-{subgraph.version}"'
        )
        _cache_headers(response, graph)
        if request.query_params.get("download") in ("1", "true"):
            response["Content-Disposition"] = (
                f'attachment; filename="{graph.model.slug}-{graph.slug}-{subgraph.share_slug}.json"'
            )
        return response


class GraphArtifactBinaryView(generics.GenericAPIView[Graph]):
    """The explorer's binary sidecar of the graph JSON (contract/graph_binary.py): the document
    without its links, then the links as typed arrays in the explorer's edge order.

    Same access, ETag/conditional GET and caching as the artifact; gzip on the wire. 404 when
    the graph cannot have one (read its JSON then)."""

    serializer_class = GraphSerializer

    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        # The page asks for application/octet-stream, which no renderer makes: the sidecar is
        # sent as bytes, not rendered, and an error is JSON whatever the client accepts.
        return super().perform_content_negotiation(request, force=True)

    @extend_schema(
        responses={
            (200, "application/octet-stream"): OpenApiResponse(
                OpenApiTypes.BINARY, description="Graph sidecar, version 1"
            ),
            304: None,
        },
    )
    def get(self, request: Request, model: str, slug: str) -> HttpResponseBase:
        graph = _graph_or_404(request, model, slug, related=("model",))
        etag = sidecar.etag(graph.artifact_sha256)
        if _etag_matches(request, etag):
            response: HttpResponseBase = HttpResponse(status=304)
        else:
            try:
                packed = sidecar.sidecar_gzip(graph.artifact_name, graph.artifact_sha256)
            except GraphBinaryError as exc:
                raise NotFound(f"this graph has no binary sidecar ({exc}); read its JSON") from exc
            if _accepts_gzip(request):
                response = HttpResponse(packed, content_type="application/octet-stream")
                response["Content-Encoding"] = "gzip"
            else:
                response = HttpResponse(
                    gzip.decompress(packed), content_type="application/octet-stream"
                )
        response["ETag"] = etag
        _cache_headers(response, graph)
        return response


class GraphNeighbourhoodView(generics.GenericAPIView[Graph]):
    """Nodes and their strongest links, for graphs too large to download whole."""

    serializer_class = NeighbourhoodSerializer

    @extend_schema(
        parameters=[
            OpenApiParameter("node_id", str, many=True, required=True),
            OpenApiParameter("direction", str, enum=["in", "out", "both"]),
            OpenApiParameter("limit", int, description="Links per node and direction (1-1000)."),
        ],
        responses={200: NeighbourhoodSerializer},
    )
    def get(self, request: Request, model: str, slug: str) -> Response:
        graph = _graph_or_404(request, model, slug)
        node_ids = [n[:100] for n in request.query_params.getlist("node_id") if n][:100]
        if not node_ids:
            raise ValidationError({"node_id": "give at least one node_id"})
        direction = request.query_params.get("direction", "both")
        if direction not in ("in", "out", "both"):
            raise ValidationError({"direction": "expected in, out or both"})
        raw_limit = request.query_params.get("limit", "100")
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 1000:
            raise ValidationError({"limit": "expected an integer from 1 to 1000"})
        result = artifacts.neighbourhood(
            graph.artifact_name,
            graph.artifact_sha256,
            node_ids,
            direction=direction,
            limit=int(raw_limit),
        )
        if result is None:
            raise NotFound("no such node in this graph")
        return Response(result)


class FeatureGraphsView(generics.ListAPIView[GraphNode]):
    """Graphs containing a feature, most influential first (lowest cumulative influence)."""

    serializer_class = FeatureGraphSerializer

    def get_queryset(self) -> Any:
        kw = self.kwargs
        transcoder_set = get_object_or_404(
            TranscoderSet.objects.filter(
                model__in=LanguageModel.objects.visible_to(self.request.user)
            ),
            model__slug=kw["model"],
            slug=kw["set_slug"],
        )
        return (
            GraphNode.objects.filter(
                transcoder_set=transcoder_set,
                layer=kw["layer"],
                feature_index=kw["index"],
                graph__in=Graph.objects.listed_for(self.request.user),
            )
            .select_related("graph__model", "graph__transcoder_set", "graph__owner")
            .order_by(F("influence").asc(nulls_last=True), "-graph__created_at", "id")
        )


# ---------------------------------------------------------------------------------------------
# Subgraphs


class GraphSubgraphsView(generics.ListCreateAPIView[Subgraph]):
    """Saved subgraphs of a graph (public ones and yours); save a new one with POST."""

    serializer_class = SubgraphSerializer
    throttle_classes = [WriteThrottle]

    def get_permissions(self) -> list[Any]:
        if self.request.method == "POST":
            return [permissions.IsAuthenticated()]
        return [permissions.AllowAny()]

    def _graph(self) -> Graph:
        return _graph_or_404(self.request, self.kwargs["model"], self.kwargs["slug"])

    def get_queryset(self) -> Any:
        return (
            Subgraph.objects.listed_for(self.request.user)
            .filter(graph=self._graph())
            .select_related("graph__model", "owner")
        )

    def get_serializer_context(self) -> dict[str, Any]:
        context = dict(super().get_serializer_context())
        if self.request.method == "POST":
            context["graph"] = self._graph()
        return context

    def perform_create(self, serializer: Any) -> None:
        serializer.save(graph=serializer.context["graph"], owner=self.request.user)


class SubgraphDetailView(generics.RetrieveUpdateDestroyAPIView[Subgraph]):
    """A saved subgraph by its share slug. Updates must name the version they read (``If-Match:
    "3"`` or ``"version": 3``); a stale one gets 409 with the current version and content."""

    serializer_class = SubgraphSerializer
    throttle_classes = [WriteThrottle]
    lookup_field = "share_slug"

    def get_queryset(self) -> Any:
        return Subgraph.objects.visible_to(self.request.user).select_related(
            "graph__model", "owner"
        )

    def get_object(self) -> Subgraph:
        subgraph: Subgraph = super().get_object()
        if self.request.method not in permissions.SAFE_METHODS and not subgraph.can_edit(
            self.request.user
        ):
            raise PermissionDenied("only the owner can change or delete this subgraph")
        return subgraph

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        response = super().retrieve(request, *args, **kwargs)
        response["ETag"] = f'"{response.data["version"]}"'
        return response

    @extend_schema(
        request=SubgraphWriteSerializer,
        parameters=[OpenApiParameter("If-Match", str, OpenApiParameter.HEADER)],
        responses={200: SubgraphSerializer},
    )
    def put(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self._write(request, partial=False)

    @extend_schema(
        request=SubgraphWriteSerializer,
        parameters=[OpenApiParameter("If-Match", str, OpenApiParameter.HEADER)],
        responses={200: SubgraphSerializer},
    )
    def patch(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self._write(request, partial=True)

    def _write(self, request: Request, *, partial: bool) -> Response:
        subgraph = self.get_object()
        form = SubgraphWriteSerializer(subgraph, data=request.data, partial=partial)
        form.is_valid(raise_exception=True)
        changes = dict(form.validated_data)
        expected = parse_if_match(request.META.get("HTTP_IF_MATCH"))
        body_version = changes.pop("version", None)
        if expected is None:
            expected = body_version
        if expected is None:
            raise ValidationError(
                {"version": 'name the version you read: If-Match: "<version>" or "version": N'}
            )
        if not services.update_subgraph(subgraph, expected, changes):
            subgraph.refresh_from_db()
            current = SubgraphSerializer(subgraph).data
            body = error_body(
                f"someone saved a newer version ({subgraph.version}); "
                "reload it or save yours as a new subgraph",
                {"version": f"you sent {expected}, the current version is {subgraph.version}"},
                current_version=subgraph.version,
                current=current,
            )
            return Response(body, status=status.HTTP_409_CONFLICT)
        response = Response(SubgraphSerializer(subgraph).data)
        response["ETag"] = f'"{subgraph.version}"'
        return response
