"""Validation of intervention and steering requests (the JSON shape of a run: responses.py).

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
do); null means every position. The lookups (the graph and subgraph a run tests, the prompt's token
count) are steering/services.py's; this module turns their answers into field errors.
"""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from rest_framework import serializers

from contract.params import (
    INTERVENE_MODES,
    INTERVENTION_ACTIONS,
    MAX_LOGIT_TOKENS,
    InterveneParams,
    SteerParams,
)
from core.api import documented
from core.visibility import Visibility
from features.models import LanguageModel, TranscoderSet
from jobs.serializers import (
    FiniteFloatField,
    StrictSerializer,
    bounded,
    check_prompt_length,
    prompt_field,
    resolve_model,
    resolve_transcoder_set,
)
from steering import services
from steering.interventions import members
from steering.models import SteeringRun

ACTIONS = INTERVENTION_ACTIONS


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
    # validate() bounds it by action; the schema states both bounds.
    value = documented(
        FiniteFloatField,
        {
            "type": "number",
            "minimum": -max(settings.STEERING_MAX_SCALE, settings.STEERING_MAX_SET_VALUE),
            "maximum": max(settings.STEERING_MAX_SCALE, settings.STEERING_MAX_SET_VALUE),
            "description": f"scale: a factor within ±{settings.STEERING_MAX_SCALE}; set: a "
            f"value within ±{settings.STEERING_MAX_SET_VALUE}; ablate: none.",
        },
        required=False,
    )

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
    # Each item is at least one feature, and a run has at most STEERING_MAX_INTERVENTIONS.
    interventions = serializers.ListField(
        child=InterventionSerializer(), max_length=settings.STEERING_MAX_INTERVENTIONS
    )
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
        try:
            graph, subgraph = services.graph_and_subgraph(
                user, model, attrs.get("graph"), attrs.get("subgraph")
            )
        except services.RequestError as exc:
            raise serializers.ValidationError(exc.errors) from None
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
        n_tokens = services.prompt_token_count(model, prompt, graph)
        self._check_features(attrs["interventions"], attrs["transcoder_set"], model, n_tokens)
        return attrs

    @staticmethod
    def _check_features(
        interventions: list[dict[str, Any]],
        transcoder_set: TranscoderSet,
        model: LanguageModel,
        n_tokens: int | None,
    ) -> None:
        limit = settings.STEERING_MAX_INTERVENTIONS
        if sum(len(members(item)) for item in interventions) > limit:
            raise serializers.ValidationError(
                {"interventions": f"at most {limit} features in one run, groups counted by member"}
            )
        errors: dict[str, str] = {}
        for i, item in enumerate(interventions):
            for j, member in enumerate(members(item)):
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

    n_tokens = bounded(
        serializers.IntegerField,
        SteerParams,
        "n_tokens",
        max_value=settings.STEERING_MAX_NEW_TOKENS,
    )
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


class SteeringRunUpdateSerializer(serializers.ModelSerializer[SteeringRun]):
    class Meta:
        model = SteeringRun
        fields = ["title", "visibility"]


class RerunSerializer(StrictSerializer):
    visibility = serializers.ChoiceField(choices=Visibility.choices, default=Visibility.PRIVATE)
