"""The JSON shape of a steering run, its job and its result (what the API answers; the requests
are validated in serializers.py). The result's shapes are made by inference/steering_json.py."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema_field
from rest_framework import serializers

from jobs.serializers import JobGraphSerializer, TokenSerializer
from steering.models import SteeringRun
from steering.serializers import InterventionSerializer


class RunJobSerializer(serializers.Serializer[Any]):
    id = serializers.UUIDField()
    status = serializers.CharField()
    phase = serializers.CharField()
    percent = serializers.FloatField()
    error = serializers.CharField()
    url = serializers.CharField()
    websocket = serializers.CharField(help_text="Its events; 'done' means the result is stored.")


class LogitRowSerializer(serializers.Serializer[Any]):
    token = serializers.IntegerField()
    text = serializers.CharField()
    clean_probability = serializers.FloatField()
    probability = serializers.FloatField(help_text="With the interventions.")
    clean_logit = serializers.FloatField()
    logit = serializers.FloatField()


class ActivationChangeSerializer(serializers.Serializer[Any]):
    layer = serializers.IntegerField()
    position = serializers.IntegerField()
    feature = serializers.IntegerField()
    clean = serializers.FloatField()
    value = serializers.FloatField(help_text="With the interventions.")


class InterveneResultSerializer(serializers.Serializer[Any]):
    input_tokens = TokenSerializer(many=True)
    logits = LogitRowSerializer(
        many=True,
        help_text="The top_k tokens before or after, plus logit_tokens, most probable before first.",
    )
    activations = ActivationChangeSerializer(
        many=True, help_text="Features whose activation changed, largest change first (<= 100)."
    )


class TopTokenSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    text = serializers.CharField()
    probability = serializers.FloatField()


class GeneratedTokenSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    text = serializers.CharField()
    probability = serializers.FloatField(help_text="Of this token at its step (temperature 1).")
    top = TopTokenSerializer(many=True, help_text="The top_k next tokens at this step.")


class ContinuationSerializer(serializers.Serializer[Any]):
    text = serializers.CharField()
    tokens = GeneratedTokenSerializer(many=True)


class SteerResultSerializer(serializers.Serializer[Any]):
    input_tokens = TokenSerializer(many=True)
    default = ContinuationSerializer()
    steered = ContinuationSerializer()


class SteeringRunSerializer(serializers.ModelSerializer[SteeringRun]):
    status = serializers.ChoiceField(
        choices=["queued", "running", "succeeded", "failed", "cancelled"], read_only=True
    )
    interventions = serializers.SerializerMethodField()
    settings = serializers.SerializerMethodField()
    result = serializers.SerializerMethodField(help_text="Null until the job succeeds.")
    owner: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )
    model: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )
    transcoder_set: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True, allow_null=True
    )
    graph = serializers.SerializerMethodField()
    subgraph: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="share_slug", read_only=True, allow_null=True
    )
    job = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()

    class Meta:
        model = SteeringRun
        fields = [
            "id", "kind", "status", "owner", "model", "transcoder_set", "graph", "subgraph",
            "title", "prompt", "interventions", "settings", "result", "job", "rerun_of",
            "visibility", "created_at", "url",
        ]  # fmt: skip
        read_only_fields = fields

    @extend_schema_field(InterventionSerializer(many=True))
    def get_interventions(self, run: SteeringRun) -> list[dict[str, Any]]:
        return list(run.interventions)

    @extend_schema_field(serializers.DictField())
    def get_settings(self, run: SteeringRun) -> dict[str, Any]:
        return dict(run.settings)

    @extend_schema_field(
        PolymorphicProxySerializer(
            component_name="SteeringResult",
            serializers=[InterveneResultSerializer, SteerResultSerializer],
            resource_type_field_name=None,
            allow_null=True,
        )
    )
    def get_result(self, run: SteeringRun) -> dict[str, Any] | None:
        return run.result

    @extend_schema_field(JobGraphSerializer(allow_null=True))
    def get_graph(self, run: SteeringRun) -> dict[str, str] | None:
        if run.graph is None:
            return None
        return run.graph.links()

    @extend_schema_field(RunJobSerializer(allow_null=True))
    def get_job(self, run: SteeringRun) -> dict[str, Any] | None:
        job = run.job
        if job is None:
            return None
        return {
            "id": str(job.id),
            "status": job.status,
            "phase": job.phase,
            "percent": round(job.percent, 1),
            "error": job.error,
            "url": reverse("api-job", kwargs={"job_id": job.id}),
            "websocket": job.websocket_path,
        }

    def get_url(self, run: SteeringRun) -> str:
        return reverse("api-steering-run", kwargs={"run_id": run.id})
