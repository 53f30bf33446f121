"""Steering API: run an intervention or a steered generation as a job, read, list, re-run.

``POST /intervene`` and ``POST /steer`` answer 202 with the run; its ``job.websocket`` sends a
``done`` event once the result is stored (or ``failed`` with a message), and ``GET`` on its
``url`` then has the ``result``. Runs are listed on the graph and the saved subgraph they test.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import generics, permissions, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import UserRateThrottle
from rest_framework.views import APIView

from core.throttling import RedisRateThrottle
from graphs.models import Graph, Subgraph
from jobs.services import TooManyJobs
from jobs.views import too_many_jobs
from steering import services
from steering.models import SteeringRun
from steering.responses import SteeringRunSerializer
from steering.serializers import (
    InterveneRequestSerializer,
    RerunSerializer,
    RunRequestSerializer,
    SteeringRunUpdateSerializer,
    SteerRequestSerializer,
)


class SteeringThrottle(RedisRateThrottle, UserRateThrottle):
    """Its own budget: a researcher tuning a strength sends many small runs."""

    scope = "steering"


def _runs() -> Any:
    return SteeringRun.objects.select_related(
        "owner", "model", "transcoder_set", "graph__model", "subgraph", "job"
    )


def _created(request: Request, form: RunRequestSerializer, kind: str, **extra: Any) -> Response:
    fields = {**form.run_fields(), **extra}
    try:
        run = services.create_run(kind=kind, owner=request.user, fields=fields)  # type: ignore[arg-type]
    except TooManyJobs as exc:
        return too_many_jobs(exc)
    body = SteeringRunSerializer(_runs().get(pk=run.pk)).data
    return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": body["url"]})


class InterveneView(APIView):
    """Queue an intervention: next-token probabilities and feature activations with and
    without the interventions (constrained: the graph's linear model; free: the real network)."""

    permission_classes = [permissions.IsAuthenticated]
    throttle_classes = [SteeringThrottle]

    @extend_schema(request=InterveneRequestSerializer, responses={202: SteeringRunSerializer})
    def post(self, request: Request) -> Response:
        form = InterveneRequestSerializer(data=request.data, context={"request": request})
        form.is_valid(raise_exception=True)
        return _created(request, form, SteeringRun.Kind.INTERVENE)


class SteerView(APIView):
    """Queue a steered generation: the default and the steered continuation, same seed, with the
    top next tokens at every generated position."""

    permission_classes = [permissions.IsAuthenticated]
    throttle_classes = [SteeringThrottle]

    @extend_schema(request=SteerRequestSerializer, responses={202: SteeringRunSerializer})
    def post(self, request: Request) -> Response:
        form = SteerRequestSerializer(data=request.data, context={"request": request})
        form.is_valid(raise_exception=True)
        return _created(request, form, SteeringRun.Kind.STEER)


class SteeringRunDetailView(generics.RetrieveUpdateDestroyAPIView[SteeringRun]):
    """A run with its result (null until its job succeeds). Its owner may rename it, change its
    visibility or delete it (a queued or running job is cancelled)."""

    serializer_class = SteeringRunSerializer
    lookup_url_kwarg = "run_id"
    lookup_field = "pk"
    http_method_names = ["get", "patch", "delete", "head", "options"]

    def get_queryset(self) -> Any:
        return _runs().visible_to(self.request.user)

    def get_object(self) -> SteeringRun:
        run: SteeringRun = super().get_object()
        if self.request.method not in permissions.SAFE_METHODS and not run.can_edit(
            self.request.user
        ):
            raise PermissionDenied("only the owner can change or delete this run")
        return run

    @extend_schema(request=SteeringRunUpdateSerializer, responses={200: SteeringRunSerializer})
    def patch(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        run = self.get_object()
        form = SteeringRunUpdateSerializer(run, data=request.data, partial=True)
        form.is_valid(raise_exception=True)
        form.save()
        return Response(SteeringRunSerializer(run).data)

    def perform_destroy(self, instance: SteeringRun) -> None:
        services.delete_run(instance)


class SteeringRunRerunView(APIView):
    """Run it again, as a new run of yours with the same prompt, interventions and settings
    (the same seed, so a steered run reproduces its text)."""

    permission_classes = [permissions.IsAuthenticated]
    throttle_classes = [SteeringThrottle]

    @extend_schema(request=RerunSerializer, responses={202: SteeringRunSerializer})
    def post(self, request: Request, run_id: uuid.UUID) -> Response:
        original = get_object_or_404(_runs().visible_to(request.user), pk=run_id)
        options = RerunSerializer(data=request.data)
        options.is_valid(raise_exception=True)
        body = {
            **services.request_body(original, request.user),
            "visibility": options.validated_data["visibility"],
        }
        kinds: dict[str, type[RunRequestSerializer]] = {
            SteeringRun.Kind.INTERVENE: InterveneRequestSerializer,
            SteeringRun.Kind.STEER: SteerRequestSerializer,
        }
        form = kinds[original.kind](data=body, context={"request": request})
        form.is_valid(raise_exception=True)
        return _created(request, form, original.kind, rerun_of=original)


class GraphRunsView(generics.ListAPIView[SteeringRun]):
    """Runs that test this graph (yours and public ones), newest first."""

    serializer_class = SteeringRunSerializer

    def get_queryset(self) -> Any:
        graph = get_object_or_404(
            Graph.objects.visible_to(self.request.user),
            model__slug=self.kwargs["model"],
            slug=self.kwargs["slug"],
        )
        return _runs().listed_for(self.request.user).filter(graph=graph)


class SubgraphRunsView(generics.ListAPIView[SteeringRun]):
    """Runs that test this saved subgraph (yours and public ones), newest first."""

    serializer_class = SteeringRunSerializer

    def get_queryset(self) -> Any:
        subgraph = get_object_or_404(
            Subgraph.objects.visible_to(self.request.user), share_slug=self.kwargs["share_slug"]
        )
        return _runs().listed_for(self.request.user).filter(subgraph=subgraph)
