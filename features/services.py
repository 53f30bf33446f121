"""Bulk feature lookup: up to 10,000 keys in one round trip, answered in request order.

Speed matters here (the explorer asks for hundreds of features as a graph opens), so Postgres
builds the whole ``results`` JSON in one statement: the keys go in as arrays, ``unnest ... WITH
ORDINALITY`` joins them to the unique (set, layer, index) index, and per-feature explanations and
examples are correlated subqueries on their own indexes. Python never decodes a feature row; it
only works out which keys are missing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import connection

from core.visibility import Visibility, is_staff
from features.models import TOP_EXPLANATIONS, LanguageModel, TranscoderSet

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

INCLUDE_CHOICES = ("explanations", "logits", "activations", "histogram")
DEFAULT_INCLUDE = ("explanations", "logits")


@dataclass(frozen=True)
class FeatureKey:
    model: str
    set: str
    layer: int
    index: int

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, "set": self.set, "layer": self.layer, "index": self.index}


@dataclass
class LookupResult:
    results_json: str  # a JSON array, built by Postgres
    missing: list[FeatureKey]
    found: int

    def to_json(self) -> str:
        missing = json.dumps([key.as_dict() for key in self.missing])
        return f'{{"results":{self.results_json},"missing":{missing}}}'

    def to_python(self) -> dict[str, Any]:
        return json.loads(self.to_json())


def visible_sets(
    pairs: set[tuple[str, str]], user: AbstractBaseUser | AnonymousUser | None
) -> dict[tuple[str, str], int]:
    """(model slug, set slug) -> transcoder set id, for the pairs this user may read."""
    if not pairs:
        return {}
    sets = TranscoderSet.objects.filter(
        model__slug__in={m for m, _ in pairs}, slug__in={s for _, s in pairs}
    )
    if not is_staff(user):
        sets = sets.exclude(model__visibility=Visibility.PRIVATE)
    return {
        (model, slug): pk
        for pk, model, slug in sets.values_list("pk", "model__slug", "slug")
        if (model, slug) in pairs
    }


def _select(include: set[str], max_examples: int, max_explanations: int) -> tuple[str, list[Any]]:
    parts = [
        "'model', m.slug",
        "'set', s.slug",
        "'layer', f.layer",
        "'index', f.index",
        "'density', f.density",
        "'act_min', f.act_min",
        "'act_max', f.act_max",
        "'max_activation', f.max_activation",
    ]
    params: list[Any] = []
    if "logits" in include:
        parts += [
            "'top_logits', f.top_logits",
            "'top_logits_values', f.top_logits_values",
            "'bottom_logits', f.bottom_logits",
            "'bottom_logits_values', f.bottom_logits_values",
        ]
    if "histogram" in include:
        parts += ["'histogram', f.histogram", "'quantile_values', f.quantile_values"]
    if "explanations" in include and max_explanations <= TOP_EXPLANATIONS:
        parts.append("'explanations', f.top_explanations")
    elif "explanations" in include:
        parts.append(
            # Most explanations are imported (no author): look the username up only when set.
            """'explanations', (SELECT coalesce(json_agg(json_build_object(
                    'id', e.id, 'text', e.text, 'method', e.method, 'model', e.model,
                    'score', e.score, 'scores', e.scores,
                    'author', CASE WHEN e.author_id IS NULL THEN NULL ELSE
                        (SELECT u.username FROM auth_user u WHERE u.id = e.author_id) END,
                    'created_at', e.created_at)
                    ORDER BY e.score DESC NULLS LAST, e.id), '[]'::json)
                FROM (SELECT * FROM features_explanation e0 WHERE e0.feature_id = f.id
                      ORDER BY e0.score DESC NULLS LAST, e0.id LIMIT %s) e)"""
        )
        params.append(max_explanations)
    if "activations" in include:
        parts.append(
            """'examples', (SELECT coalesce(json_agg(json_build_object(
                    'quantile', a.quantile, 'tokens', a.tokens, 'values', a.values,
                    'max_value', a.max_value, 'max_index', a.max_index,
                    'train_token_ind', a.train_token_ind,
                    'is_repeated_datapoint', a.is_repeated_datapoint) ORDER BY a.rank), '[]'::json)
                FROM (SELECT * FROM features_activationexample a0 WHERE a0.feature_id = f.id
                      ORDER BY a0.rank LIMIT %s) a)"""
        )
        params.append(max_examples)
    return "json_build_object(" + ", ".join(parts) + ")", params


def lookup(
    keys: list[FeatureKey],
    *,
    user: AbstractBaseUser | AnonymousUser | None,
    include: set[str] | frozenset[str] = frozenset(DEFAULT_INCLUDE),
    max_examples: int = 5,
    max_explanations: int = 10,
) -> LookupResult:
    """Features for ``keys`` in request order (repeats repeated); unknown keys in ``missing``."""
    set_ids = visible_sets({(k.model, k.set) for k in keys}, user)
    wanted = []
    for position, key in enumerate(keys):
        ts = set_ids.get((key.model, key.set))
        if ts is not None:
            wanted.append((ts, key.layer, key.index, position))
    if not wanted:
        return LookupResult("[]", list(keys), 0)
    # Probed in index order (features are stored in that order too), so neighbouring keys hit
    # the same pages; json_agg puts the results back in request order.
    wanted.sort()
    ts_ids, layers, indexes, ords = zip(*wanted, strict=True)
    select, params = _select(set(include), max_examples, max_explanations)
    # The keys go in as array literals ('{1,2,3}'): building the text is C-speed, where
    # adapting 4,000 Python ints one by one cost as much as the query. Model and set slugs
    # come back from a join on the (few) transcoder sets instead of two more arrays.
    sql = f"""
        SELECT coalesce(json_agg({select} ORDER BY k.ord), '[]'::json)::text,
               coalesce(array_agg(k.ord), '{{}}')
        FROM unnest(%s::int[], %s::bigint[], %s::int[], %s::int[]) AS k(ord, ts, layer, idx)
        JOIN features_feature f
          ON f.transcoder_set_id = k.ts AND f.layer = k.layer AND f.index = k.idx
        JOIN features_transcoderset s ON s.id = k.ts
        JOIN features_languagemodel m ON m.id = s.model_id
    """
    arrays = ["{" + ",".join(map(str, values)) + "}" for values in (ords, ts_ids, layers, indexes)]
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, *arrays])
        results_json, found_ords = cursor.fetchone()
    found = set(found_ords)
    missing = [key for position, key in enumerate(keys) if position not in found]
    return LookupResult(results_json, missing, len(found))


def feature_detail(
    model: str, set_slug: str, layer: int, index: int, *, user: Any
) -> dict[str, Any] | None:
    """One feature with everything (explanations, logits, histogram, up to 50 examples)."""
    result = lookup(
        [FeatureKey(model, set_slug, layer, index)],
        user=user,
        include=frozenset(INCLUDE_CHOICES),
        max_examples=50,
        max_explanations=100,
    )
    data = json.loads(result.results_json)
    return data[0] if data else None


def models_for(user: Any) -> Any:
    return (
        LanguageModel.objects.listed_for(user)
        .select_related("default_transcoder_set")
        .prefetch_related("transcoder_sets")
    )
