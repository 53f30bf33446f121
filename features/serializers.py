"""Thin serializers: request checks and the OpenAPI shapes of responses."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework import serializers

from contract.server_paths import public_name
from features.models import Explanation, LanguageModel, TranscoderSet
from features.services import INCLUDE_CHOICES


class TranscoderSetSerializer(serializers.ModelSerializer[TranscoderSet]):
    class Meta:
        model = TranscoderSet
        fields = [
            "slug",
            "display_name",
            "kind",
            "features_per_layer",
            "feature_input_hook",
            "feature_output_hook",
        ]


class LanguageModelSerializer(serializers.ModelSerializer[LanguageModel]):
    transcoder_sets = TranscoderSetSerializer(many=True, read_only=True)
    default_transcoder_set: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )

    class Meta:
        model = LanguageModel
        fields = [
            "slug",
            "display_name",
            "source",
            "n_layers",
            "d_model",
            "vocab_size",
            "max_prompt_tokens",
            "visibility",
            "default_transcoder_set",
            "transcoder_sets",
        ]

    def to_representation(self, instance: LanguageModel) -> dict[str, Any]:
        # A hub id is shown as it is; a folder on the server only by its name.
        data: dict[str, Any] = super().to_representation(instance)
        data["source"] = public_name(data["source"])
        return data


class FeatureKeySerializer(serializers.Serializer[Any]):
    model = serializers.CharField(max_length=100)
    set = serializers.CharField(max_length=100)
    layer = serializers.IntegerField(min_value=0, max_value=10_000)
    index = serializers.IntegerField(min_value=0, max_value=2**31 - 1)


class LookupRequestSerializer(serializers.Serializer[Any]):
    """Documentation only: the view checks bodies by hand (10,000 nested serializers are slow)."""

    features = serializers.ListField(
        child=FeatureKeySerializer(), min_length=1, max_length=settings.FEATURE_LOOKUP_MAX_KEYS
    )
    include = serializers.ListField(
        child=serializers.ChoiceField(choices=INCLUDE_CHOICES),
        required=False,
        help_text="Default: explanations, logits.",
    )
    max_activations = serializers.IntegerField(min_value=0, max_value=50, default=5)


class ExplanationSerializer(serializers.ModelSerializer[Explanation]):
    author: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )

    class Meta:
        model = Explanation
        fields = ["id", "text", "method", "model", "score", "scores", "author", "created_at"]
        read_only_fields = ["id", "method", "model", "score", "scores", "author", "created_at"]

    def validate_text(self, value: str) -> str:
        value = value.strip()
        if not value:
            raise serializers.ValidationError("an explanation cannot be empty")
        if len(value) > 1000:
            raise serializers.ValidationError("at most 1000 characters")
        return value


class ExampleSerializer(serializers.Serializer[Any]):
    quantile = serializers.CharField()
    tokens = serializers.ListField(child=serializers.CharField())
    values = serializers.ListField(child=serializers.FloatField())
    max_value = serializers.FloatField()
    max_index = serializers.IntegerField()
    train_token_ind = serializers.IntegerField(allow_null=True)
    is_repeated_datapoint = serializers.BooleanField()


class FeatureSerializer(serializers.Serializer[Any]):
    """A feature as lookup and detail return it (fields present per ``include``)."""

    model = serializers.CharField()
    set = serializers.CharField()
    layer = serializers.IntegerField()
    index = serializers.IntegerField()
    density = serializers.FloatField(allow_null=True)
    act_min = serializers.FloatField(allow_null=True)
    act_max = serializers.FloatField(allow_null=True)
    max_activation = serializers.FloatField(allow_null=True)
    top_logits = serializers.ListField(child=serializers.CharField(), required=False)
    top_logits_values = serializers.ListField(
        child=serializers.FloatField(),
        required=False,
        help_text="Each top_logits token's value (its decoder direction through the unembedding),"
        " in the same order; empty when the dashboards were imported without values.",
    )
    bottom_logits = serializers.ListField(child=serializers.CharField(), required=False)
    bottom_logits_values = serializers.ListField(
        child=serializers.FloatField(),
        required=False,
        help_text="Each bottom_logits token's value, in the same order; empty when unknown.",
    )
    histogram = serializers.JSONField(required=False)
    quantile_values = serializers.JSONField(required=False)
    explanations = ExplanationSerializer(many=True, required=False)
    examples = ExampleSerializer(many=True, required=False)


class LookupResponseSerializer(serializers.Serializer[Any]):
    results = FeatureSerializer(many=True)
    missing = FeatureKeySerializer(many=True)


class FeatureSearchResultSerializer(serializers.Serializer[Any]):
    model = serializers.CharField(source="transcoder_set.model.slug")
    set = serializers.CharField(source="transcoder_set.slug")
    layer = serializers.IntegerField()
    index = serializers.IntegerField()
    density = serializers.FloatField(allow_null=True)
    max_activation = serializers.FloatField(allow_null=True)
    top_logits = serializers.SerializerMethodField()
    explanation = serializers.SerializerMethodField()
    rank = serializers.SerializerMethodField()

    def get_top_logits(self, feature: Any) -> list[str]:
        return list(feature.top_logits[:10])

    def get_explanation(self, feature: Any) -> str | None:
        explanations = list(feature.explanations.all())
        return explanations[0].text if explanations else None

    def get_rank(self, feature: Any) -> float | None:
        return getattr(feature, "rank", None)
