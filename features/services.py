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
from features.models import TOP_EXPLANATIONS, LanguageModel

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
    if not keys:
        return LookupResult("[]", [], 0)
    # Each (model, set) pair the keys name gets a number (its place in the pair arrays, as
    # ``WITH ORDINALITY`` counts it), and the visibility check is a join on those few pairs in
    # the same statement: one round trip per lookup, not a query for the readable sets first.
    pairs = sorted({(k.model, k.set) for k in keys})
    pair_numbers = {pair: n for n, pair in enumerate(pairs, start=1)}
    # Probed in index order (features are stored in that order too), so neighbouring keys hit
    # the same pages; json_agg puts the results back in request order.
    wanted = sorted(
        (pair_numbers[(k.model, k.set)], k.layer, k.index, position)
        for position, k in enumerate(keys)
    )
    pair_ns, layers, indexes, ords = zip(*wanted, strict=True)
    select, params = _select(set(include), max_examples, max_explanations)
    visibility = "" if is_staff(user) else "AND m.visibility <> %s"
    # The keys go in as array literals ('{1,2,3}'): building the text is C-speed, where
    # adapting 4,000 Python ints one by one cost as much as the query. The pair slugs (a
    # handful) go in as ordinary parameters.
    sql = f"""
        SELECT coalesce(json_agg({select} ORDER BY k.ord), '[]'::json)::text,
               coalesce(array_agg(k.ord), '{{}}')
        FROM unnest(%s::int[], %s::int[], %s::int[], %s::int[]) AS k(ord, pair, layer, idx)
        JOIN unnest(%s::text[], %s::text[]) WITH ORDINALITY AS p(model, set_slug, n)
          ON p.n = k.pair
        JOIN features_languagemodel m ON m.slug = p.model {visibility}
        JOIN features_transcoderset s ON s.model_id = m.id AND s.slug = p.set_slug
        JOIN features_feature f
          ON f.transcoder_set_id = s.id AND f.layer = k.layer AND f.index = k.idx
    """
    arrays = ["{" + ",".join(map(str, values)) + "}" for values in (ords, pair_ns, layers, indexes)]
    pair_params: list[Any] = [[m for m, _ in pairs], [s for _, s in pairs]]
    if visibility:
        pair_params.append(Visibility.PRIVATE.value)
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, *arrays, *pair_params])
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
