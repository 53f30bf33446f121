"""Models, transcoder sets and their features: the dashboards the explorer and the site show.

Millions of features must stay fast to look up, so ``Feature`` is keyed by a unique
(transcoder_set, layer, index) index, its small arrays (logits, histogram) are JSON on the row,
and per-token activation values are stored as ``real[]`` (4 bytes a value, not 8).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.db import connection, models, transaction
from django.db.models import Q

from core.visibility import Visibility, is_staff

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser


class RealField(models.FloatField):
    """A 4-byte ``real`` column: activations do not need double precision."""

    def db_type(self, connection: Any) -> str:
        return "real"


class LanguageModelQuerySet(models.QuerySet["LanguageModel"]):
    def visible_to(self, user: AbstractBaseUser | AnonymousUser | None) -> LanguageModelQuerySet:
        """Public and unlisted models for everyone; private ones for staff only."""
        if is_staff(user):
            return self
        return self.exclude(visibility=Visibility.PRIVATE)

    def listed_for(self, user: AbstractBaseUser | AnonymousUser | None) -> LanguageModelQuerySet:
        if is_staff(user):
            return self
        return self.filter(visibility=Visibility.PUBLIC)


class LanguageModel(models.Model):
    slug = models.SlugField(max_length=100, unique=True)
    display_name = models.CharField(max_length=200)
    # A Hugging Face id ("google/gemma-2-2b") or a local path to the weights.
    source = models.CharField(max_length=500, blank=True)
    n_layers = models.PositiveSmallIntegerField()
    d_model = models.PositiveIntegerField()
    vocab_size = models.PositiveIntegerField()
    # Tokenizer facts the web side needs without loading it: name/path, bos token, etc.
    tokenizer = models.JSONField(default=dict, blank=True)
    # Longest prompt (in tokens) a graph may be generated for on this model.
    max_prompt_tokens = models.PositiveIntegerField(default=64)
    visibility = models.CharField(
        max_length=10, choices=Visibility.choices, default=Visibility.PUBLIC
    )
    default_transcoder_set = models.ForeignKey(
        "TranscoderSet", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = LanguageModelQuerySet.as_manager()

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class TranscoderSet(models.Model):
    class Kind(models.TextChoices):
        PLT = "plt", "Per-layer transcoders"
        CLT = "clt", "Cross-layer transcoder"

    model = models.ForeignKey(
        LanguageModel, on_delete=models.CASCADE, related_name="transcoder_sets"
    )
    slug = models.SlugField(max_length=100)
    display_name = models.CharField(max_length=200, blank=True)
    kind = models.CharField(max_length=3, choices=Kind.choices, default=Kind.PLT)
    feature_input_hook = models.CharField(max_length=200, blank=True)
    feature_output_hook = models.CharField(max_length=200, blank=True)
    # Features per layer (d_transcoder).
    features_per_layer = models.PositiveIntegerField()
    # A local path or an hf:// URI the worker loads the weights from.
    source = models.CharField(max_length=500, blank=True)
    # Who may compute its dashboards besides staff (docs/dashboards.md); None: staff only.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="transcoder_sets",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["model__slug", "slug"]
        constraints = [
            models.UniqueConstraint(fields=["model", "slug"], name="transcoder_set_slug_per_model")
        ]

    def __str__(self) -> str:
        return f"{self.model.slug}/{self.slug}"

    def can_manage(self, user: AbstractBaseUser | AnonymousUser | None) -> bool:
        """Staff and the set's owner may run jobs that rewrite its features (dashboards)."""
        if is_staff(user):
            return True
        return user is not None and user.is_authenticated and self.owner_id == user.pk


class FeatureQuerySet(models.QuerySet["Feature"]):
    def for_set(self, transcoder_set: TranscoderSet) -> FeatureQuerySet:
        return self.filter(transcoder_set=transcoder_set)

    def visible_to(self, user: AbstractBaseUser | AnonymousUser | None) -> FeatureQuerySet:
        if is_staff(user):
            return self
        return self.exclude(transcoder_set__model__visibility=Visibility.PRIVATE)

    def with_explanations(self) -> FeatureQuerySet:
        return self.prefetch_related("explanations")

    def with_top_logit(self, token: str) -> FeatureQuerySet:
        return self.filter(top_logits__contains=[token])


class Feature(models.Model):
    transcoder_set = models.ForeignKey(
        TranscoderSet, on_delete=models.CASCADE, related_name="features"
    )
    layer = models.PositiveSmallIntegerField()
    index = models.PositiveIntegerField()
    # Fraction of tokens on which the feature fires.
    density = RealField(null=True, blank=True)
    act_min = RealField(null=True, blank=True)
    act_max = RealField(null=True, blank=True)
    max_activation = RealField(null=True, blank=True)
    # Counts per bin over [act_min, act_max], as in circuit-tracer's feature JSON.
    histogram = models.JSONField(null=True, blank=True)
    quantile_values = models.JSONField(null=True, blank=True)
    # Output tokens (strings, searched through the GIN index) and, in the same order, their values
    # (the decoder direction through the unembedding); values are [] when the import had none.
    top_logits = models.JSONField(default=list, blank=True)
    top_logits_values = models.JSONField(default=list, blank=True)
    bottom_logits = models.JSONField(default=list, blank=True)
    bottom_logits_values = models.JSONField(default=list, blank=True)
    # The best explanations (at most TOP_EXPLANATIONS) as bulk lookup returns them, kept in step
    # by refresh_explanations(): a lookup of 1,000 features then reads one column instead of
    # running 1,000 subqueries (about 40% of its time).
    top_explanations = models.JSONField(default=list, blank=True, editable=False)

    objects = FeatureQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["transcoder_set", "layer", "index"], name="feature_key")
        ]
        indexes = [GinIndex(fields=["top_logits"], name="feature_top_logits_gin")]

    def __str__(self) -> str:
        return f"{self.transcoder_set_id}:L{self.layer}/{self.index}"


class ActivationExample(models.Model):
    feature = models.ForeignKey(Feature, on_delete=models.CASCADE, related_name="examples")
    # Position in the dashboard: 0 is the top example.
    rank = models.PositiveSmallIntegerField(default=0)
    quantile = models.CharField(max_length=100, blank=True)
    tokens = ArrayField(models.TextField())
    values = ArrayField(RealField())
    max_value = RealField()
    max_index = models.PositiveIntegerField()
    # Where the example's attention window starts in its training document (circuit-tracer).
    train_token_ind = models.IntegerField(null=True, blank=True)
    is_repeated_datapoint = models.BooleanField(default=False)

    class Meta:
        indexes = [models.Index(fields=["feature", "rank"], name="example_feature_rank")]

    def __str__(self) -> str:
        return f"example {self.rank} of feature {self.feature_id}"


class ExplanationQuerySet(models.QuerySet["Explanation"]):
    def search(self, text: str) -> ExplanationQuerySet:
        from django.contrib.postgres.search import SearchQuery, SearchRank

        query = SearchQuery(text, config="english", search_type="websearch")
        return (
            self.filter(search_vector=query)
            .annotate(rank=SearchRank(models.F("search_vector"), query))
            .order_by("-rank", "id")
        )


class Explanation(models.Model):
    feature = models.ForeignKey(Feature, on_delete=models.CASCADE, related_name="explanations")
    text = models.TextField()
    # How it was made: "token-pattern" or "llm" (autointerp/), "human", or an importer's label.
    method = models.CharField(max_length=100, blank=True)
    # Who wrote it when a program did: "token-pattern" or the LLM's name.
    # Database defaults too, for raw inserts (features/importers.py).
    model = models.CharField(max_length=200, blank=True, default="", db_default="")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="explanations",
    )
    # The simulation score (Pearson correlation on held-out examples): what it is ranked by.
    score = RealField(null=True, blank=True)
    # Every score: {"simulation": {"value", "judge", "n_activating", "n_non_activating",
    # "n_tokens"}, "detection": {...}, "fuzzing": {...}} (autointerp.scoring.Score).
    scores = models.JSONField(default=dict, db_default={}, blank=True)
    # LLM tokens spent on it: {"requests", "prompt_tokens", "completion_tokens"}; null otherwise.
    usage = models.JSONField(null=True, blank=True)
    # Method-specific data, e.g. the token patterns that simulate it exactly.
    details = models.JSONField(default=dict, db_default={}, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    search_vector = models.GeneratedField(
        expression=SearchVector("text", config="english"),
        output_field=SearchVectorField(),
        db_persist=True,
    )

    objects = ExplanationQuerySet.as_manager()

    class Meta:
        ordering = ["-score", "id"]
        indexes = [
            GinIndex(fields=["search_vector"], name="explanation_search"),
            models.Index(fields=["feature", "-score"], name="explanation_feature_score"),
        ]
        constraints = [
            models.CheckConstraint(condition=~Q(text=""), name="explanation_text_not_empty")
        ]

    def __str__(self) -> str:
        return self.text[:80]

    def save(self, *args: Any, **kwargs: Any) -> None:
        with transaction.atomic():
            super().save(*args, **kwargs)
            refresh_explanations([self.feature_id])

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        with transaction.atomic():
            result = super().delete(*args, **kwargs)
            refresh_explanations([self.feature_id])
        return result


TOP_EXPLANATIONS = 10
_REFRESH = f"""
UPDATE features_feature f SET top_explanations = coalesce((
    SELECT jsonb_agg(jsonb_build_object(
        'id', e.id, 'text', e.text, 'method', e.method, 'model', e.model, 'score', e.score,
        'scores', e.scores, 'author', u.username, 'created_at', e.created_at)
        ORDER BY e.score DESC NULLS LAST, e.id)
    FROM (SELECT * FROM features_explanation e0 WHERE e0.feature_id = f.id
          ORDER BY e0.score DESC NULLS LAST, e0.id LIMIT {TOP_EXPLANATIONS}) e
    LEFT JOIN auth_user u ON u.id = e.author_id), '[]'::jsonb)
WHERE f.id = ANY(%s)
"""


def refresh_explanations(feature_ids: list[int]) -> None:
    """Recompute ``Feature.top_explanations`` for these features.

    Call it after any write to explanations that bypasses ``Explanation.save/delete`` (bulk
    inserts, ``QuerySet.delete``). The rows are locked first, so two writers for one feature
    serialise and the second recomputes from a snapshot that includes the first's change.
    """
    ids = sorted({i for i in feature_ids if i is not None})
    if not ids:
        return
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT id FROM features_feature WHERE id = ANY(%s) ORDER BY id FOR UPDATE", [ids]
        )
        cursor.execute(_REFRESH, [ids])


class FeatureImport(models.Model):
    """A dashboard file imported into a set, so a rerun of ``import_features`` skips it."""

    transcoder_set = models.ForeignKey(TranscoderSet, on_delete=models.CASCADE, related_name="+")
    path = models.CharField(max_length=1000)
    size = models.PositiveBigIntegerField()
    mtime = models.BigIntegerField()
    features = models.PositiveIntegerField(default=0)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["transcoder_set", "path"], name="feature_import_path")
        ]

    def __str__(self) -> str:
        return self.path
