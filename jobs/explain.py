"""The ``explain`` job: automated explanations of features, on the default queue.

No model is loaded (the token-pattern method reads stored dashboards; the LLM method calls an
HTTP endpoint), so these jobs never wait behind graphs on a GPU queue. The web side validates a
request (``ExplainSerializer``) into ``contract.explain_params.ExplainParams``; the worker
(``run``, the body of the ``jobs.explain`` task) explains the features in chunks through
``features.explaining``, committing each: a cancel, a crash or a dead endpoint keeps every
finished chunk, and running the same request again skips what is done.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from autointerp.llm import LLMError
from contract.explain_params import LLM, MAX_FEATURES, METHODS, ExplainParams
from core.api import WriteThrottle
from features.explaining import NoExplainer, configured_llm, explain_features
from features.models import Feature, TranscoderSet
from graphs.models import Graph, GraphNode
from jobs import events, services
from jobs.models import Job
from jobs.serializers import JobSerializer, StrictSerializer, resolve_model, resolve_transcoder_set
from jobs.views import too_many_jobs

log = logging.getLogger(__name__)

KEPT = "the features explained before this are kept; run the job again to continue from there"


class LayerIndexSerializer(StrictSerializer):
    layer = serializers.IntegerField(min_value=0, max_value=10_000)
    index = serializers.IntegerField(min_value=0, max_value=2**31 - 1)


class ExplainSerializer(StrictSerializer):
    """Give exactly one of ``features``, ``graph``, ``layer`` or ``whole_set``."""

    model = serializers.SlugField(max_length=100)
    transcoder_set = serializers.SlugField(max_length=100, required=False)
    method = serializers.ChoiceField(choices=METHODS, default=METHODS[0])
    features = serializers.ListField(
        child=LayerIndexSerializer(), required=False, max_length=MAX_FEATURES
    )
    graph = serializers.SlugField(max_length=200, required=False, help_text="A graph's slug.")
    layer = serializers.IntegerField(min_value=0, max_value=10_000, required=False)
    whole_set = serializers.BooleanField(required=False, default=False)
    replace = serializers.BooleanField(required=False, default=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        user = self.context["request"].user
        scopes: list[str] = [s for s in ("features", "graph", "layer") if s in attrs]
        scopes += ["whole_set"] if attrs["whole_set"] else []
        if len(scopes) != 1:
            raise serializers.ValidationError(
                {"features": "give exactly one of features, graph, layer or whole_set"}
            )
        if attrs["method"] == LLM:
            if not settings.EXPLAINER_BASE_URL:
                raise serializers.ValidationError(
                    {"method": "no LLM endpoint is configured on this server (EXPLAINER_BASE_URL)"}
                )
            if not user.is_staff:
                raise serializers.ValidationError(
                    {"method": "only staff may spend the LLM endpoint's tokens"}
                )
        attrs["model"] = resolve_model(attrs, user)
        attrs["transcoder_set"] = resolve_transcoder_set(
            attrs["model"], attrs.get("transcoder_set")
        )
        if "layer" in attrs and attrs["layer"] >= attrs["model"].n_layers:
            raise serializers.ValidationError(
                {"layer": f"{attrs['model'].slug} has layers 0..{attrs['model'].n_layers - 1}"}
            )
        if "graph" in attrs:
            attrs["features"] = self._graph_features(attrs, user)
        elif "features" in attrs:
            attrs["features"] = [[k["layer"], k["index"]] for k in attrs["features"]]
            if not attrs["features"]:
                raise serializers.ValidationError({"features": "give at least one feature"})
        return attrs

    def _graph_features(self, attrs: dict[str, Any], user: Any) -> list[list[int]]:
        graph = (
            Graph.objects.visible_to(user).filter(model=attrs["model"], slug=attrs["graph"]).first()
        )
        if graph is None:
            raise serializers.ValidationError({"graph": f"no graph {attrs['graph']!r}"})
        keys = (
            GraphNode.objects.filter(graph=graph)
            .values_list("layer", "feature_index")
            .distinct()
            .order_by("layer", "feature_index")
        )
        found = [[layer, index] for layer, index in keys[: MAX_FEATURES + 1]]
        if len(found) > MAX_FEATURES:
            raise serializers.ValidationError(
                {"graph": f"the graph has more than {MAX_FEATURES} features"}
            )
        if not found:
            raise serializers.ValidationError({"graph": "the graph has no feature nodes"})
        return found

    def params(self) -> ExplainParams:
        data = self.validated_data
        return ExplainParams(
            method=data["method"],
            features=data.get("features", []),
            graph=data.get("graph", ""),
            layer=data.get("layer"),
            whole_set=data["whole_set"],
            replace=data["replace"],
        )


class ExplainView(APIView):
    """Queue an explain job (docs/explanations.md); 202 with the job, followed like any job."""

    permission_classes = [permissions.IsAuthenticated]
    throttle_classes = [WriteThrottle]

    @extend_schema(request=ExplainSerializer, responses={202: JobSerializer})
    def post(self, request: Request) -> Response:
        form = ExplainSerializer(data=request.data, context={"request": request})
        form.is_valid(raise_exception=True)
        try:
            (job,) = services.create_jobs(
                kind=Job.Kind.EXPLAIN,
                owner=request.user,  # type: ignore[arg-type]
                model=form.validated_data["model"],
                transcoder_set=form.validated_data["transcoder_set"],
                params=[form.params().to_dict()],
            )
        except services.TooManyJobs as exc:
            return too_many_jobs(exc)
        body = JobSerializer(job).data
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": body["url"]})


# ---------------------------------------------------------------------------------------------
# Worker side


def feature_ids(transcoder_set: TranscoderSet, params: ExplainParams) -> list[int]:
    features = Feature.objects.for_set(transcoder_set)
    if params.layer is not None:
        features = features.filter(layer=params.layer)
    elif not params.whole_set:
        wanted = {(layer, index) for layer, index in params.features}
        features = features.filter(
            layer__in={k[0] for k in wanted}, index__in={k[1] for k in wanted}
        )
        return [
            pk
            for pk, layer, index in features.values_list("pk", "layer", "index")
            if (layer, index) in wanted
        ]
    return list(features.values_list("pk", flat=True))


def run(job_id: str, worker: str) -> str:
    """Claim and run one explain job; returns what happened (for logs and tests)."""
    job = services.claim(job_id, worker)
    if job is None:
        return "skipped"
    with services.Run(job) as current:
        outcome = _explain(current)
    events.flush()
    return outcome


def _explain(current: services.Run) -> str:
    job = current.job
    params = ExplainParams.from_dict(job.params)
    if job.transcoder_set is None:
        current.fail("the job's transcoder set was deleted")
        return "failed"
    try:
        llm = configured_llm() if params.method == LLM else None
        outcome = explain_features(
            feature_ids(job.transcoder_set, params),
            method=params.method,
            llm=llm,
            replace=params.replace,
            on_progress=lambda done, total: current.progress("explaining", done / max(total, 1)),
            should_stop=current.should_stop,
        )
    except (LLMError, NoExplainer) as exc:
        current.fail(f"{exc}; {KEPT}")
        return "failed"
    except SoftTimeLimitExceeded:
        current.fail(f"the job ran out of time (JOBS_SOFT_TIME_LIMIT_S); {KEPT}")
        return "failed"
    except Exception as exc:
        log.exception("explain job %s failed", job.id)
        current.fail(f"explaining failed ({type(exc).__name__}); {KEPT}")
        return "failed"
    if current.should_stop():
        return "cancelled"
    result = {
        "explained": outcome.explained,
        "skipped": outcome.skipped,
        "failed": len(outcome.failed),
        "failures": dict(list(outcome.failed.items())[:20]),
        "summary": outcome.summary(),
    }
    try:
        with transaction.atomic():
            current.mark_succeeded(result=result)
    except services.JobLost:
        return "cancelled"
    current.emit({"type": "done", "result": result})
    return "succeeded"
