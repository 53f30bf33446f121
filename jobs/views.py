"""Jobs API: generate (one or a batch), follow, cancel; tokenize for the generate form."""

from __future__ import annotations

import uuid
from typing import Any

from django.http import Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import permissions, serializers, status
from rest_framework.exceptions import APIException
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import LookupThrottle, WriteThrottle, error_body
from jobs import services, tokens
from jobs.models import Job
from jobs.serializers import (
    GenerateBatchSerializer,
    GenerateSerializer,
    JobSerializer,
    TokenizeResponseSerializer,
    TokenizeSerializer,
)


class ServiceUnavailable(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "no worker is available"
    default_code = "unavailable"


def too_many_jobs(exc: services.TooManyJobs) -> Response:
    """429 for the per-user limit on active jobs (no Retry-After: it depends on the queue)."""
    return Response(error_body(str(exc)), status=status.HTTP_429_TOO_MANY_REQUESTS)


BatchResponse = inline_serializer(
    "BatchResponse",
    {
        "batch_id": serializers.UUIDField(),
        "url": serializers.CharField(),
        "counts": serializers.DictField(child=serializers.IntegerField()),
        "jobs": JobSerializer(many=True),
    },
)


class GenerateView(APIView):
    """Queue an attribution graph for a prompt; 202 with the job. Follow it at ``url`` or
    on the websocket ``websocket``."""

    permission_classes = [permissions.IsAuthenticated]
    throttle_classes = [WriteThrottle]

    @extend_schema(request=GenerateSerializer, responses={202: JobSerializer})
    def post(self, request: Request) -> Response:
        form = GenerateSerializer(data=request.data, context={"request": request})
        form.is_valid(raise_exception=True)
        data = form.validated_data
        try:
            (job,) = services.create_attribution_jobs(
                owner=request.user,  # type: ignore[arg-type]
                model=data["model"],
                transcoder_set=data["transcoder_set"],
                prompts=[data["prompt"]],
                params=form.job_params(),
            )
        except services.TooManyJobs as exc:
            return too_many_jobs(exc)
        body = JobSerializer(job).data
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": body["url"]})


class GenerateBatchView(APIView):
    """Queue one job per prompt (up to 100), sharing the settings; follow them by batch id."""

    permission_classes = [permissions.IsAuthenticated]
    throttle_classes = [WriteThrottle]

    @extend_schema(request=GenerateBatchSerializer, responses={202: BatchResponse})
    def post(self, request: Request) -> Response:
        form = GenerateBatchSerializer(data=request.data, context={"request": request})
        form.is_valid(raise_exception=True)
        data = form.validated_data
        try:
            jobs = services.create_attribution_jobs(
                owner=request.user,  # type: ignore[arg-type]
                model=data["model"],
                transcoder_set=data["transcoder_set"],
                prompts=data["prompts"],
                params=form.job_params(),
                batch=True,
            )
        except services.TooManyJobs as exc:
            return too_many_jobs(exc)
        batch_id = jobs[0].batch_id
        body: dict[str, Any] = {
            "batch_id": str(batch_id),
            "url": f"/api/v1/batches/{batch_id}",
            "counts": {"queued": len(jobs)},
            "jobs": JobSerializer(jobs, many=True).data,
        }
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": body["url"]})


def _job_or_404(request: Request, job_id: uuid.UUID) -> Job:
    return get_object_or_404(
        Job.objects.visible_to(request.user).select_related(
            "model", "transcoder_set", "owner", "graph__model"
        ),
        pk=job_id,
    )


class JobDetailView(APIView):
    """A job: status, phase, percent, queue position, its graph once done, or its error."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(responses={200: JobSerializer})
    def get(self, request: Request, job_id: uuid.UUID) -> Response:
        job = services.refresh_if_stale(_job_or_404(request, job_id))
        return Response(JobSerializer(job).data)


class JobCancelView(APIView):
    """Cancel a queued or running job (a running one stops at its next backward batch).
    Cancelling a finished job is a 409 that says how it finished."""

    permission_classes = [permissions.IsAuthenticated]
    throttle_classes = [WriteThrottle]

    @extend_schema(request=None, responses={200: JobSerializer, 409: OpenApiResponse()})
    def post(self, request: Request, job_id: uuid.UUID) -> Response:
        job = _job_or_404(request, job_id)
        if not services.cancel(job):
            job.refresh_from_db()
            return Response(
                error_body(f"the job already {job.status}", status=job.status),
                status=status.HTTP_409_CONFLICT,
            )
        job.refresh_from_db()
        return Response(JobSerializer(job).data)


class BatchDetailView(APIView):
    """Every job of a batch, in submission order, with counts per status."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(responses={200: BatchResponse})
    def get(self, request: Request, batch_id: uuid.UUID) -> Response:
        jobs = list(
            Job.objects.visible_to(request.user)
            .in_batch(batch_id)
            .select_related("model", "transcoder_set", "owner", "graph__model")
            .order_by("created_at")
        )
        if not jobs:
            raise Http404
        jobs = [services.refresh_if_stale(job) for job in jobs]
        counts: dict[str, int] = {}
        for job in jobs:
            counts[job.status] = counts.get(job.status, 0) + 1
        return Response(
            {
                "batch_id": str(batch_id),
                "url": f"/api/v1/batches/{batch_id}",
                "counts": counts,
                "jobs": JobSerializer(jobs, many=True).data,
            }
        )


class TokenizeView(APIView):
    """The prompt's tokens (as the engine sees them, special first token included) and the
    model's top next-token probabilities with their running sum. Cached per prompt."""

    permission_classes = [permissions.IsAuthenticated]
    throttle_classes = [LookupThrottle]

    @extend_schema(request=TokenizeSerializer, responses={200: TokenizeResponseSerializer})
    def post(self, request: Request) -> Response:
        form = TokenizeSerializer(data=request.data, context={"request": request})
        form.is_valid(raise_exception=True)
        model = form.validated_data["model"]
        try:
            body = tokens.tokenize(
                model, form.validated_data["prompt"], form.validated_data["top_k"]
            )
        except tokens.WorkerUnavailable as exc:
            raise ServiceUnavailable(str(exc)) from None
        if "error" in body:
            field = body.get("field")
            if not field:  # the worker's trouble (model files, memory), not the request's
                raise ServiceUnavailable(body["error"])
            return Response(
                error_body(f"{field}: {body['error']}", {field: body["error"]}),
                status=status.HTTP_400_BAD_REQUEST,
            )
        return Response({**body, "model": model.slug, "max_prompt_tokens": model.max_prompt_tokens})
