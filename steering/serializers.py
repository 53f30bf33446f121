"""Validation of intervention and steering requests, and the JSON shape of a run.

Every bad input is a 400 that names its field in the request's own terms
(``interventions[2].value``, ``interventions[0].features[3].position``, ``n_tokens``). What the web
process can check without the model is checked here: the model and transcoder set, the graph or
subgraph the run tests, layers and feature indices against the set's size, positions against the
prompt's token count (when the tokenizer is on this machine or the prompt comes from a graph),
and strength bounds. The worker checks the rest (the model's context length) and fails the job
with a message naming the field.

An intervention is one feature or a group (a supernode) sharing one action and value:

    {"layer": 3, "position": 7, "feature": 1234, "action": "scale", "value": 2.0}
    {"group": "Texas", "features": [{"layer": 1, "position": 9, "feature": 88}, ...],
     "action": "ablate"}

``position`` counts tokens of the prompt with the special first token at 0 (as graph node ids
do); null means every position.
"""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.urls import reverse
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema_field
from rest_framework import serializers

from contract.params import INTERVENE_MODES, MAX_LOGIT_TOKENS, InterveneParams, SteerParams
from core.visibility import Visibility
from features.models import LanguageModel, TranscoderSet
from graphs.models import Graph, Subgraph
from jobs import tokens
from jobs.serializers import (
    FiniteFloatField,
    JobGraphSerializer,
    StrictSerializer,
    bounded,
    check_prompt_length,
    prompt_field,
    resolve_model,
    resolve_transcoder_set,
)
from steering.models import SteeringRun

ACTIONS = ("ablate", "set", "scale")


class FeatureRefSerializer(StrictSerializer):
    layer = serializers.IntegerField(min_value=0)
    position = serializers.IntegerField(min_value=1, allow_null=True, required=False, default=None)
    feature = serializers.IntegerField(min_value=0)


class InterventionSerializer(StrictSerializer):
    """One feature (``layer``, ``position``, ``feature``) or a group (``group``, ``features``)."""

    layer = serializers.IntegerField(min_value=0, required=False)
    position = serializers.IntegerField(min_value=1, allow_null=True, required=False)
    feature = serializers.IntegerField(min_value=0, required=False)
    group = serializers.CharField(max_length=200, required=False)
    features = serializers.ListField(
        child=FeatureRefSerializer(), min_length=1, max_length=10_000, required=False
    )
    action = serializers.ChoiceField(choices=ACTIONS)
    value = FiniteFloatField(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        is_group = "group" in attrs or "features" in attrs
        if is_group:
            stray = sorted({"layer", "position", "feature"} & set(attrs))
            if stray:
                raise serializers.ValidationError(
                    {stray[0]: "a group lists its members under 'features'"}
                )
            for name in ("group", "features"):
                if name not in attrs:
                    raise serializers.ValidationError({name: "a group needs a name and features"})
        else:
            for name in ("layer", "feature"):
                if name not in attrs:
                    raise serializers.ValidationError(
                        {name: "required (or give 'group' and 'features')"}
                    )
            attrs.setdefault("position", None)
        action = attrs["action"]
        if action == "ablate":
            attrs.pop("value", None)
            return attrs
        if "value" not in attrs:
            raise serializers.ValidationError({"value": f"required by the action {action!r}"})
        limit = (
            settings.STEERING_MAX_SCALE if action == "scale" else settings.STEERING_MAX_SET_VALUE
        )
        if abs(attrs["value"]) > limit:
            what = "a scale factor" if action == "scale" else "a set value"
            raise serializers.ValidationError(
                {"value": f"{what} must be between -{limit} and {limit}"}
            )
        return attrs


def _members(item: dict[str, Any]) -> list[dict[str, Any]]:
    if "features" in item:
        return [dict(member) for member in item["features"]]
    return [{k: item[k] for k in ("layer", "position", "feature")}]


def expand(interventions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The engine's flat list: one entry per feature, a group's action copied to each member."""
    flat = []
    for item in interventions:
        for member in _members(item):
            flat.append(
                {**member, "action": item["action"], "value": float(item.get("value", 0.0))}
            )
    return flat


class RunRequestSerializer(StrictSerializer):
    """What intervene and steer requests share. Subclasses name their settings fields."""

    setting_names: tuple[str, ...] = ()

    model = serializers.SlugField(max_length=100)
    transcoder_set = serializers.SlugField(max_length=100, required=False)
    prompt = prompt_field()
    graph = serializers.SlugField(
        max_length=100, required=False, help_text="The graph (of this model) the run tests."
    )
    subgraph = serializers.RegexField(
        r"^[A-Za-z0-9_-]{1,32}$",
        required=False,
        help_text="The saved subgraph (its share slug) the run tests; implies its graph.",
    )
    interventions = serializers.ListField(child=InterventionSerializer(), max_length=10_000)
    title = serializers.CharField(max_length=200, required=False, allow_blank=True)
    visibility = serializers.ChoiceField(choices=Visibility.choices, default=Visibility.PRIVATE)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The prompt may come from the graph.
        self.fields["prompt"].required = False

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        user = self.context["request"].user
        model = resolve_model(attrs, user)
        attrs["model"] = model
        graph, subgraph = self._graph_and_subgraph(attrs, model, user)
        attrs["graph"], attrs["subgraph"] = graph, subgraph
        set_slug = attrs.pop("transcoder_set", None)
        if set_slug is None and graph is not None and graph.transcoder_set is not None:
            attrs["transcoder_set"] = graph.transcoder_set
        else:
            attrs["transcoder_set"] = resolve_transcoder_set(model, set_slug)
        prompt = attrs.get("prompt")
        if prompt is None:
            if graph is None:
                raise serializers.ValidationError({"prompt": "give a prompt (or a graph)"})
            attrs["prompt"] = prompt = graph.prompt
        if not prompt.strip():
            raise serializers.ValidationError({"prompt": "the prompt is empty"})
        check_prompt_length(model, prompt)
        n_tokens = self._token_count(model, prompt, graph)
        self._check_features(attrs["interventions"], attrs["transcoder_set"], model, n_tokens)
        return attrs

    def _graph_and_subgraph(
        self, attrs: dict[str, Any], model: LanguageModel, user: Any
    ) -> tuple[Graph | None, Subgraph | None]:
        graph: Graph | None = None
        if "graph" in attrs:
            graph = Graph.objects.visible_to(user).filter(model=model, slug=attrs["graph"]).first()
            if graph is None:
                raise serializers.ValidationError(
                    {"graph": f"model {model.slug!r} has no graph {attrs['graph']!r} you can open"}
                )
        subgraph: Subgraph | None = None
        if "subgraph" in attrs:
            subgraph = (
                Subgraph.objects.visible_to(user)
                .select_related("graph")
                .filter(share_slug=attrs["subgraph"])
                .first()
            )
            if subgraph is None:
                raise serializers.ValidationError({"subgraph": "no such subgraph you can open"})
            if graph is not None and subgraph.graph_id != graph.pk:
                raise serializers.ValidationError({"subgraph": "it belongs to another graph"})
            if subgraph.graph.model_id != model.pk:
                raise serializers.ValidationError({"subgraph": "it is a graph of another model"})
            graph = subgraph.graph
        return graph, subgraph

    @staticmethod
    def _token_count(model: LanguageModel, prompt: str, graph: Graph | None) -> int | None:
        """Tokens of the prompt, special first token included; None when unknown here."""
        if graph is not None and prompt == graph.prompt and graph.prompt_tokens:
            return len(graph.prompt_tokens)
        return tokens.count_tokens(model, prompt)

    @staticmethod
    def _check_features(
        interventions: list[dict[str, Any]],
        transcoder_set: TranscoderSet,
        model: LanguageModel,
        n_tokens: int | None,
    ) -> None:
        limit = settings.STEERING_MAX_INTERVENTIONS
        if sum(len(_members(item)) for item in interventions) > limit:
            raise serializers.ValidationError(
                {"interventions": f"at most {limit} features in one run, groups counted by member"}
            )
        errors: dict[str, str] = {}
        for i, item in enumerate(interventions):
            for j, member in enumerate(_members(item)):
                where = f"interventions[{i}]" + (f".features[{j}]" if "features" in item else "")
                if member["layer"] >= model.n_layers:
                    errors[f"{where}.layer"] = (
                        f"{member['layer']} is not a layer of {model.slug} "
                        f"(0..{model.n_layers - 1})"
                    )
                if member["feature"] >= transcoder_set.features_per_layer:
                    errors[f"{where}.feature"] = (
                        f"{transcoder_set} has no feature {member['feature']} "
                        f"(0..{transcoder_set.features_per_layer - 1})"
                    )
                position = member["position"]
                if position is not None and n_tokens is not None and position >= n_tokens:
                    errors[f"{where}.position"] = (
                        f"{position} is outside the prompt ({n_tokens} tokens, the special "
                        f"first token at 0)"
                    )
                if len(errors) >= 20:
                    raise serializers.ValidationError(errors)
        if errors:
            raise serializers.ValidationError(errors)

    def run_fields(self) -> dict[str, Any]:
        """The SteeringRun's request fields, as validated (groups kept as the user made them)."""
        data = self.validated_data
        interventions = [dict(item) for item in data["interventions"]]
        for item in interventions:
            if "features" in item:
                item["features"] = [dict(member) for member in item["features"]]
        return {
            "model": data["model"],
            "transcoder_set": data["transcoder_set"],
            "graph": data["graph"],
            "subgraph": data["subgraph"],
            "prompt": data["prompt"],
            "interventions": interventions,
            "settings": {name: data[name] for name in self.setting_names},
            "title": data.get("title", ""),
            "visibility": data["visibility"],
        }


class InterveneRequestSerializer(RunRequestSerializer):
    """Next-token logits and feature activations with and without the interventions."""

    setting_names = ("mode", "freeze_attention", "top_k", "logit_tokens")

    mode = serializers.ChoiceField(
        choices=INTERVENE_MODES,
        default=InterveneParams.mode,
        help_text="constrained: attention, norms and MLP outputs frozen (the graph's own linear "
        "model); free: the network recomputes downstream of the interventions.",
    )
    freeze_attention = serializers.BooleanField(
        default=InterveneParams.freeze_attention,
        help_text="free mode only: keep the clean run's attention patterns.",
    )
    top_k = bounded(serializers.IntegerField, InterveneParams, "top_k")
    logit_tokens = serializers.ListField(
        child=serializers.IntegerField(min_value=0),
        max_length=MAX_LOGIT_TOKENS,
        default=list,
        help_text="Token ids always shown in the result (e.g. the graph's target logits).",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("mode") == "constrained" and attrs.get("freeze_attention") is False:
            raise serializers.ValidationError(
                {"freeze_attention": "constrained mode always freezes attention; use mode 'free'"}
            )
        attrs = super().validate(attrs)
        vocab = attrs["model"].vocab_size
        for i, token in enumerate(attrs["logit_tokens"]):
            if token >= vocab:
                raise serializers.ValidationError(
                    {f"logit_tokens[{i}]": f"token id must be in [0, {vocab})"}
                )
        return attrs


class SteerRequestSerializer(RunRequestSerializer):
    """The default and the steered continuation of the prompt, sampled with the same seed."""

    setting_names = ("n_tokens", "temperature", "seed", "apply_to_generated", "top_k")

    n_tokens = bounded(serializers.IntegerField, SteerParams, "n_tokens")
    temperature = bounded(FiniteFloatField, SteerParams, "temperature")
    seed = bounded(serializers.IntegerField, SteerParams, "seed", with_default=False)
    apply_to_generated = serializers.BooleanField(
        default=SteerParams.apply_to_generated,
        help_text="Every-position interventions also act on the generated tokens.",
    )
    top_k = bounded(serializers.IntegerField, SteerParams, "top_k")

    def validate_n_tokens(self, value: int) -> int:
        limit = settings.STEERING_MAX_NEW_TOKENS
        if value > limit:
            raise serializers.ValidationError(
                f"Ensure this value is less than or equal to {limit}."
            )
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        if "seed" not in attrs:
            attrs["seed"] = secrets.randbelow(2**31)
        return attrs


class RunJobSerializer(serializers.Serializer[Any]):
    id = serializers.UUIDField()
    status = serializers.CharField()
    phase = serializers.CharField()
    percent = serializers.FloatField()
    error = serializers.CharField()
    url = serializers.CharField()
    websocket = serializers.CharField(help_text="Its events; 'done' means the result is stored.")


class TokenSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    text = serializers.CharField()


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


class SteeringRunUpdateSerializer(serializers.ModelSerializer[SteeringRun]):
    class Meta:
        model = SteeringRun
        fields = ["title", "visibility"]


class RerunSerializer(StrictSerializer):
    visibility = serializers.ChoiceField(choices=Visibility.choices, default=Visibility.PRIVATE)
