from typing import Any

from django.contrib import admin

from features.models import (
    ActivationExample,
    Explanation,
    Feature,
    FeatureImport,
    LanguageModel,
    TranscoderSet,
    refresh_explanations,
)


class TranscoderSetInline(admin.TabularInline):
    model = TranscoderSet
    extra = 0
    fields = ("slug", "display_name", "kind", "features_per_layer", "source", "owner")
    raw_id_fields = ("owner",)


@admin.register(LanguageModel)
class LanguageModelAdmin(admin.ModelAdmin):
    list_display = ("slug", "display_name", "n_layers", "d_model", "visibility", "created_at")
    list_filter = ("visibility",)
    search_fields = ("slug", "display_name", "source")
    inlines = [TranscoderSetInline]


@admin.register(TranscoderSet)
class TranscoderSetAdmin(admin.ModelAdmin):
    list_display = ("slug", "model", "kind", "features_per_layer", "source", "owner")
    list_filter = ("kind", "model")
    raw_id_fields = ("owner",)
    search_fields = ("slug", "display_name")


@admin.register(Feature)
class FeatureAdmin(admin.ModelAdmin):
    # Millions of rows: no counts in filters, raw id widgets, search by exact layer/index.
    list_display = ("id", "transcoder_set", "layer", "index", "density", "max_activation")
    list_filter = ("transcoder_set",)
    list_select_related = ("transcoder_set__model",)
    search_fields = ("=index",)
    raw_id_fields = ("transcoder_set",)
    show_full_result_count = False


@admin.register(ActivationExample)
class ActivationExampleAdmin(admin.ModelAdmin):
    list_display = ("id", "feature", "rank", "quantile", "max_value")
    raw_id_fields = ("feature",)
    show_full_result_count = False


@admin.register(Explanation)
class ExplanationAdmin(admin.ModelAdmin):
    list_display = ("id", "feature", "text", "method", "author", "score", "created_at")
    list_filter = ("method",)
    search_fields = ("text",)
    raw_id_fields = ("feature", "author")
    show_full_result_count = False

    def delete_queryset(self, request: Any, queryset: Any) -> None:
        # A bulk delete bypasses Explanation.delete(): refresh the features' cached best ones.
        feature_ids = list(queryset.values_list("feature_id", flat=True))
        super().delete_queryset(request, queryset)
        refresh_explanations(feature_ids)


@admin.register(FeatureImport)
class FeatureImportAdmin(admin.ModelAdmin):
    list_display = ("path", "transcoder_set", "features", "finished_at")
