"""Request validation for generation and tokenize, and the job's JSON shape.

Every bad input is a 400 that names its field (the shared handler in core/api.py turns these
errors into ``{"error", "detail": {field: message}}``); unknown fields are refused too, so a typo
such as ``max_features`` does not silently fall back to a default. Defaults and bounds are the
contract's (``contract.params``), and so is the shape of the job's ``params``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from contract.params import AttributeParams, Params, TokenizeParams
from core.api import slug_field
from core.visibility import Visibility
from features.models import LanguageModel, TranscoderSet
from graphs import services as graph_services
from graphs.models import Graph
from jobs import services, tokens
from jobs.models import Job


class StrictSerializer(serializers.Serializer[Any]):
    """Refuses fields it does not know."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: "unknown field" for name in unknown[:20]})
        return super().to_internal_value(data)


class FiniteFloatField(serializers.FloatField):
    def to_internal_value(self, data: Any) -> float:
        value = super().to_internal_value(data)
        if not math.isfinite(value):
            raise serializers.ValidationError("must be a finite number")
        return value


def bounded(
    field: type[serializers.IntegerField] | type[serializers.FloatField],
    params: type[Params],
    name: str,
    *,
    with_default: bool = True,
    **extra: Any,
) -> Any:
    """A ``field`` with the contract's bounds, default and description of ``params``' ``name``
    (no default when the contract's is None: the field is optional)."""
    spec = params.spec(name)
    options: dict[str, Any] = {"min_value": spec.low, "max_value": spec.high, "help_text": spec.doc}
    if not with_default or spec.default is None:
        options["required"] = False
    else:
        options["default"] = spec.default
    return field(**{**options, **extra})


def resolve_model(attrs: dict[str, Any], user: Any) -> LanguageModel:
    slug = attrs["model"]
    model = LanguageModel.objects.visible_to(user).filter(slug=slug).first()
    if model is None:
        raise serializers.ValidationError({"model": f"unknown model {slug!r}"})
    return model


def resolve_transcoder_set(model: LanguageModel, slug: str | None) -> TranscoderSet:
    """The model's set called ``slug``, or its default set when no slug is given."""
    if slug:
        found = model.transcoder_sets.filter(slug=slug).first()
        if found is None:
            raise serializers.ValidationError(
                {"transcoder_set": f"model {model.slug!r} has no transcoder set {slug!r}"}
            )
        return found
    default = model.default_transcoder_set or model.transcoder_sets.first()
    if default is None:
        raise serializers.ValidationError(
            {"transcoder_set": f"model {model.slug!r} has no transcoder set yet"}
        )
    return default


def check_prompt_length(model: LanguageModel, prompt: str) -> None:
    count = tokens.count_tokens(model, prompt)
    if count is not None and count > model.max_prompt_tokens:
        raise serializers.ValidationError(
            {
                "prompt": f"the prompt has {count} tokens; {model.slug} allows at most "
                f"{model.max_prompt_tokens}"
            }
        )


def prompt_field() -> serializers.CharField:
    return serializers.CharField(
        max_length=settings.JOBS_MAX_PROMPT_CHARS, trim_whitespace=False, allow_blank=False
    )


class TargetSerializer(StrictSerializer):
    """Exactly one of ``tokens`` (explain these output tokens) or ``logit_diff`` ([a, b]: a
    minus b). A token is its id or its text; text must be one token of the model's vocabulary,
    checked here when the tokens are known (``target_problem``), else by the worker."""

    tokens = serializers.ListField(
        child=serializers.JSONField(), min_length=1, max_length=50, required=False
    )
    logit_diff = serializers.ListField(
        child=serializers.JSONField(), min_length=2, max_length=2, required=False
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("tokens" in attrs) == ("logit_diff" in attrs):
            raise serializers.ValidationError('give exactly one of "tokens" or "logit_diff"')
        name = "tokens" if "tokens" in attrs else "logit_diff"
        vocab = self.context.get("vocab_size")
        errors: dict[str, str] = {}
        for i, item in enumerate(attrs[name]):
            if isinstance(item, bool) or not isinstance(item, int | str):
                errors[f"{name}[{i}]"] = "expected a token id or the token's text"
            elif isinstance(item, int) and not 0 <= item < (vocab or 2**31):
                errors[f"{name}[{i}]"] = f"token id must be in [0, {vocab})"
            elif isinstance(item, str) and not 0 < len(item) <= 100:
                errors[f"{name}[{i}]"] = "token text must be 1 to 100 characters"
            elif isinstance(item, str) and "\x00" in item:
                errors[f"{name}[{i}]"] = "token text must not contain NUL characters"
        model = self.context.get("model")
        if not errors and model is not None:
            for i, item in enumerate(attrs[name]):
                if isinstance(item, str) and (problem := target_problem(model, item, self.context)):
                    errors[f"{name}[{i}]"] = problem
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


# After a prompt that ends in a word or punctuation, the next word is written with a space.
_WORD_END = re.compile(r"[\w.,;:!?]$")


def target_problem(model: LanguageModel, text: str, context: Mapping[str, Any]) -> str | None:
    """Why the target ``text`` would not be the one token meant, or None (also when the tokens
    are unknown here: the worker checks then). Two mistakes are caught before queueing: a text
    of several tokens, and a word without its leading space after a prompt that wants one
    ("Mary" is another token than " Mary"); the message names the token ids to give instead."""
    found = tokens.text_tokens(model, text)
    if found is None:
        return None
    if len(found) != 1:
        pieces = ", ".join(repr(piece) for _, piece in found[:8])
        return (
            f"{text!r} is {len(found)} tokens for this model ({pieces}); give one token (or its id)"
        )
    prompts = context.get("prompts") or []
    if text[:1].isspace() or not prompts or not all(_WORD_END.search(p) for p in prompts):
        return None
    spaced = tokens.text_tokens(model, " " + text)
    if spaced is None or len(spaced) != 1 or spaced[0][0] == found[0][0]:
        return None
    return (
        f"{text!r} is the token {found[0][1]!r} (id {found[0][0]}), but after this prompt the "
        f"next word starts with a space: {spaced[0][1]!r} (id {spaced[0][0]}). Give "
        f"{spaced[0][1]!r}, or the id {found[0][0]} to keep {text!r}"
    )


_TOKEN_SCHEMA = {
    "oneOf": [
        {"type": "integer", "minimum": 0, "description": "a token id"},
        {"type": "string", "minLength": 1, "maxLength": 100, "description": "one token's text"},
    ]
}


@extend_schema_field(
    {
        "type": "object",
        "description": "What the graph explains instead of the top next tokens: exactly one of "
        "`tokens` (these output tokens) or `logit_diff` ([a, b]: a minus b). A token is its id "
        "or its text; text must be exactly one token of the model's vocabulary.",
        "properties": {
            "tokens": {"type": "array", "items": _TOKEN_SCHEMA, "minItems": 1, "maxItems": 50},
            "logit_diff": {
                "type": "array",
                "items": _TOKEN_SCHEMA,
                "minItems": 2,
                "maxItems": 2,
                "description": "[a, b]: explain the logit of a minus that of b",
            },
        },
        "additionalProperties": False,
        "minProperties": 1,
        "maxProperties": 1,
    }
)
class TargetField(serializers.JSONField):
    """``target``: validated by ``TargetSerializer`` in the settings' ``validate``; typed here
    for the schema (a JSONField alone is described as ``{}``)."""


class GenerationSettingsSerializer(StrictSerializer):
    """Settings shared by one generation and a batch."""

    model = serializers.SlugField(max_length=100)
    transcoder_set = serializers.SlugField(max_length=100, required=False)
    max_n_logits = bounded(serializers.IntegerField, AttributeParams, "max_n_logits")
    desired_logit_prob = bounded(FiniteFloatField, AttributeParams, "desired_logit_prob")
    # The deployment's bound (JOBS_MAX_FEATURE_NODES) on top of the contract's, in the schema too.
    max_feature_nodes = bounded(
        serializers.IntegerField,
        AttributeParams,
        "max_feature_nodes",
        max_value=settings.JOBS_MAX_FEATURE_NODES,
    )
    node_threshold = bounded(FiniteFloatField, AttributeParams, "node_threshold")
    edge_threshold = bounded(FiniteFloatField, AttributeParams, "edge_threshold")
    batch_size = bounded(serializers.IntegerField, AttributeParams, "batch_size")
    target = TargetField(required=False)
    visibility = serializers.ChoiceField(choices=Visibility.choices, default=Visibility.PRIVATE)
    title = serializers.CharField(max_length=200, required=False, allow_blank=True)

    def validate_max_feature_nodes(self, value: int) -> int:
        if value > settings.JOBS_MAX_FEATURE_NODES:
            raise serializers.ValidationError(
                f"Ensure this value is less than or equal to {settings.JOBS_MAX_FEATURE_NODES}."
            )
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        user = self.context["request"].user
        model = resolve_model(attrs, user)
        attrs["model"] = model
        attrs["transcoder_set"] = resolve_transcoder_set(model, attrs.pop("transcoder_set", None))
        if "target" in attrs:
            if not isinstance(attrs["target"], dict):
                raise serializers.ValidationError(
                    {"target": 'expected {"tokens": [...]} or {"logit_diff": [a, b]}'}
                )
            prompts = attrs.get("prompts") or ([attrs["prompt"]] if "prompt" in attrs else [])
            target = TargetSerializer(
                data=attrs["target"],
                context={"vocab_size": model.vocab_size, "model": model, "prompts": prompts},
            )
            if not target.is_valid():
                raise serializers.ValidationError({"target": target.errors})
            attrs["target"] = dict(target.validated_data)
        return attrs

    def job_params(self) -> dict[str, Any]:
        """The settings stored on each job row (``AttributeParams``; the prompt is added per job)."""
        data = {k: v for k, v in self.validated_data.items() if k not in ("prompt", "prompts")}
        return AttributeParams.from_dict(data).to_dict()


class GenerateSerializer(GenerationSettingsSerializer):
    prompt = prompt_field()
    slug = slug_field(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        model: LanguageModel = attrs["model"]
        if not attrs["prompt"].strip():
            raise serializers.ValidationError({"prompt": "the prompt is empty"})
        check_prompt_length(model, attrs["prompt"])
        slug = attrs.get("slug")
        # A graph that is not public gets a slug of its own (graphs/services.py), so only a
        # public one can find its name taken, and only by what its requester may list.
        if slug is not None and attrs["visibility"] == Visibility.PUBLIC:
            user = self.context["request"].user
            reason = graph_services.slug_taken(model, slug, user)
            queued = Job.objects.active().filter(
                model=model, owner=user, params__slug=slug, params__visibility=Visibility.PUBLIC
            )
            if reason is None and queued.exists():
                reason = f"your queued job already makes a graph called {slug!r}"
            if reason is not None:
                raise serializers.ValidationError({"slug": reason})
        return attrs


class GenerateBatchSerializer(GenerationSettingsSerializer):
    prompts = serializers.ListField(
        child=prompt_field(),
        min_length=1,
        max_length=settings.JOBS_BATCH_MAX_PROMPTS,
        error_messages={"max_length": "at most {max_length} prompts in one batch"},
    )

    def validate_prompts(self, value: list[str]) -> list[str]:
        limit = settings.JOBS_BATCH_MAX_PROMPTS
        if len(value) > limit:
            raise serializers.ValidationError(f"at most {limit} prompts in one batch")
        for i, prompt in enumerate(value):
            if not prompt.strip():
                raise serializers.ValidationError(f"prompt {i} is empty")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        # Every prompt over the model's cap at once, so a list is fixed in one go.
        problems: dict[str, Any] = {}
        for i, prompt in enumerate(attrs["prompts"]):
            try:
                check_prompt_length(attrs["model"], prompt)
            except serializers.ValidationError as exc:
                detail = exc.detail if isinstance(exc.detail, dict) else {}
                problems[f"prompts[{i}]"] = detail.get("prompt", "too long")
        if problems:
            raise serializers.ValidationError(problems)
        return attrs


class TokenizeSerializer(StrictSerializer):
    model = serializers.SlugField(max_length=100)
    prompt = prompt_field()
    top_k = bounded(serializers.IntegerField, TokenizeParams, "top_k")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs["model"] = resolve_model(attrs, self.context["request"].user)
        return attrs


class TokenSerializer(serializers.Serializer[Any]):
    """A prompt token as the tokenizer gives it (tokenize answers and steering results)."""

    id = serializers.IntegerField()
    text = serializers.CharField()


class NextTokenSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    token = serializers.CharField()
    prob = serializers.FloatField()
    cumulative = serializers.FloatField(help_text="This and every more likely token's prob.")


class MemoryEstimateSerializer(serializers.Serializer[Any]):
    """The memory planner's answer for this prompt with the job defaults (docs/engine.md)."""

    bytes = serializers.IntegerField(
        allow_null=True, help_text="Peak memory of the attribution, weights included."
    )
    budget_bytes = serializers.IntegerField(help_text="What the worker may use.")
    batch_size = serializers.IntegerField(allow_null=True, help_text="The batch size it picks.")
    max_feature_nodes = serializers.IntegerField(allow_null=True)
    ranking_entries = serializers.IntegerField(
        allow_null=True,
        help_text="The magnitudes a row the sparse ranking keeps, where the planner chose it (no "
        "dense ranking fits); null: the dense ranking.",
    )
    refusal = serializers.CharField(help_text="Why a job would fail, and what to lower; or empty.")


class TokenizeResponseSerializer(serializers.Serializer[Any]):
    """Response only (documents the tokenize answer; the view returns the worker's dict)."""

    tokens = TokenSerializer(many=True, help_text="Special first token included.")
    n_tokens = serializers.IntegerField()
    top = NextTokenSerializer(many=True, help_text="Most likely next tokens, most likely first.")
    memory = MemoryEstimateSerializer()
    model = serializers.CharField()
    max_prompt_tokens = serializers.IntegerField()


class JobGraphSerializer(serializers.Serializer[Graph]):
    model = serializers.CharField()
    slug = serializers.CharField()
    page_url = serializers.CharField(help_text="The graph in the explorer.")
    url = serializers.CharField(help_text="The graph's API resource.")
    artifact_url = serializers.CharField()


class JobRunSerializer(serializers.Serializer[Any]):
    id = serializers.UUIDField()
    url = serializers.CharField(help_text="The steering run's API resource.")


class JobSerializer(serializers.ModelSerializer[Job]):
    model: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )
    transcoder_set: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )
    owner: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )
    position = serializers.SerializerMethodField(
        help_text="1 = next on its queue; null when not queued."
    )
    graph = serializers.SerializerMethodField()
    run = serializers.SerializerMethodField(
        help_text="An intervention or steering job's result, once stored."
    )
    url = serializers.SerializerMethodField()
    websocket = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = [
            "id", "kind", "status", "phase", "percent", "position", "params", "model",
            "transcoder_set", "owner", "graph", "run", "result", "error", "batch_id", "worker",
            "attempts",
            "created_at", "started_at", "finished_at", "url", "websocket",
        ]  # fmt: skip
        read_only_fields = fields

    def get_position(self, job: Job) -> int | None:
        return services.queue_position(job)

    @extend_schema_field(JobGraphSerializer(allow_null=True))
    def get_graph(self, job: Job) -> dict[str, str] | None:
        return job.graph.links() if job.graph is not None else None

    @extend_schema_field(JobRunSerializer(allow_null=True))
    def get_run(self, job: Job) -> dict[str, str] | None:
        return services.steering_run_links(job)

    def get_url(self, job: Job) -> str:
        return f"/api/v1/jobs/{job.id}"

    def get_websocket(self, job: Job) -> str:
        return job.websocket_path
