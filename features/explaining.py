"""Automated explanations of stored features: dashboard rows in, scored Explanation rows out.

The algorithms live in ``autointerp/`` (no Django); this module feeds them a feature's
``ActivationExample`` rows and stores what they return. Dashboards record no windows where a
feature is silent, so the silent examples are windows from other features' dashboards of the
same layer (``autointerp.examples.sample_non_activating`` says why that is sound).

Work goes in chunks, each committed before the next starts: a cancelled or crashed run keeps
every chunk it finished, and a rerun skips features that already have an explanation of the same
method and model (``explain_features(..., replace=False)``), so it resumes where it stopped.
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

from django.conf import settings
from django.db import transaction

from autointerp import pipeline
from autointerp.examples import QUANTILE, TOP, Example, FeatureExamples, sample_non_activating
from autointerp.llm import LLM, LLMConfig, LLMError
from features.models import ActivationExample, Explanation, Feature, refresh_explanations

# The dashboards' name for the strongest examples (circuit-tracer's feature JSON).
TOP_QUANTILE = "Top activations"
# Silent windows per feature: half are shown to the explainer, half scored.
N_SILENT = 10
# Features explained between two commits (and two checks for a cancel).
CHUNK = 256
LLM_CHUNK_PER_SLOT = 2


class NoExplainer(Exception):
    """The llm method was asked for but no endpoint is configured."""


def configured_llm() -> LLM:
    """The LLM the EXPLAINER_* settings name; ``NoExplainer`` when none is set."""
    if not settings.EXPLAINER_BASE_URL:
        raise NoExplainer(
            "no LLM endpoint is configured (set EXPLAINER_BASE_URL and EXPLAINER_MODEL); "
            "the token-pattern method needs none"
        )
    return LLM(
        LLMConfig(
            base_url=settings.EXPLAINER_BASE_URL,
            model=settings.EXPLAINER_MODEL,
            api_key=settings.EXPLAINER_API_KEY,
            concurrency=settings.EXPLAINER_CONCURRENCY,
            timeout_s=settings.EXPLAINER_TIMEOUT_S,
        )
    )


@dataclass
class Outcome:
    explained: int = 0
    skipped: int = 0  # already explained by this method and model, or nothing to explain
    failed: dict[str, str] = field(default_factory=dict)  # "L3/818" -> why (malformed answers)

    def summary(self) -> str:
        parts = [f"{self.explained} explained", f"{self.skipped} skipped"]
        if self.failed:
            first = next(iter(self.failed.items()))
            parts.append(f"{len(self.failed)} failed (first: {first[0]}: {first[1]})")
        return ", ".join(parts)


def silent_windows(transcoder_set_id: int, layer: int) -> list[tuple[str, ...]]:
    """Every distinct example window of one layer's dashboards, in a stable order."""
    rows = (
        ActivationExample.objects.filter(
            feature__transcoder_set_id=transcoder_set_id, feature__layer=layer
        )
        .order_by("id")
        .values_list("tokens", flat=True)
    )
    return list(dict.fromkeys(tuple(tokens) for tokens in rows))


class DashboardRow(Protocol):
    """What ``feature_examples`` reads of an example: an ``ActivationExample`` row, or a line
    of a dashboard file (benchmarks/explanations.py)."""

    @property
    def quantile(self) -> str: ...
    @property
    def tokens(self) -> Sequence[str]: ...
    @property
    def values(self) -> Sequence[float]: ...


def feature_examples(
    rows: Sequence[DashboardRow], pool: Sequence[tuple[str, ...]], *, seed: int
) -> FeatureExamples:
    """One feature's dashboard rows (in rank order) as ``autointerp`` examples."""
    top: list[Example] = []
    quantiles: list[Example] = []
    for row in rows:
        kind = TOP if row.quantile == TOP_QUANTILE else QUANTILE
        example = Example(tuple(row.tokens), tuple(row.values), kind)
        (top if kind == TOP else quantiles).append(example)
    own = [e.tokens for e in (*top, *quantiles)]
    silent = sample_non_activating(pool, exclude=own, n=N_SILENT, seed=seed)
    return FeatureExamples(tuple(top), tuple(quantiles), silent)


def silent_seed(layer: int, index: int) -> int:
    """The seed that draws a feature's silent windows: the same in every run and database."""
    return zlib.crc32(f"{layer}/{index}".encode())


def _row(feature: Feature, result: pipeline.Result) -> Explanation:
    return Explanation(
        feature=feature,
        text=result.text,
        method=result.method,
        model=result.model,
        score=result.score,
        scores=result.scores_dict(),
        usage=result.usage,
        details=result.details,
    )


def _store(rows: list[Explanation], replace_ids: list[int], method: str, model: str) -> None:
    """Add ``rows``, first deleting this method and model's older ones for ``replace_ids``."""
    with transaction.atomic():
        if replace_ids:
            Explanation.objects.filter(
                feature_id__in=replace_ids, method=method, model=model
            ).delete()
        Explanation.objects.bulk_create(rows)
        refresh_explanations([r.feature_id for r in rows] + replace_ids)


def explain_features(
    feature_ids: Iterable[int],
    *,
    method: str,
    llm: LLM | None = None,
    replace: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> Outcome:
    """Explain and score these features with ``method`` (pipeline.TOKEN_PATTERN or LLM).

    ``on_progress(done, total)`` after each chunk; ``should_stop`` is checked between chunks.
    Raises ``LLMError`` (fatal: endpoint unreachable, key refused) with every finished chunk
    kept; a malformed answer only fails its feature (``Outcome.failed``).
    """
    if method == pipeline.LLM and llm is None:
        raise ValueError("the llm method needs an LLM")
    model = llm.config.model if method == pipeline.LLM and llm else pipeline.TOKEN_PATTERN
    ids = sorted(set(feature_ids))
    outcome = Outcome()
    if not replace:
        done = set(
            Explanation.objects.filter(feature_id__in=ids, method=method, model=model)
            .values_list("feature_id", flat=True)
            .distinct()
        )
        outcome.skipped = len(done)
        ids = [i for i in ids if i not in done]
    total = len(ids) + outcome.skipped
    chunk = CHUNK if llm is None else max(1, llm.config.concurrency) * LLM_CHUNK_PER_SLOT
    pools: dict[tuple[int, int], list[tuple[str, ...]]] = {}
    for start in range(0, len(ids), chunk):
        if should_stop():
            break
        features = list(Feature.objects.filter(id__in=ids[start : start + chunk]))
        examples = _examples_of(features, pools)
        fatal: LLMError | None = None
        if method == pipeline.LLM:
            assert llm is not None
            results, fatal = _explain_llm(features, examples, llm, outcome)
        else:
            results = {f.pk: pipeline.explain_token_pattern(examples[f.pk]) for f in features}
        rows = []
        for feature in features:
            result = results.get(feature.pk)
            if result is not None:
                rows.append(_row(feature, result))
            elif fatal is None and _short(feature) not in outcome.failed:
                outcome.skipped += 1  # no activating examples: nothing to explain
        # Stored even when the endpoint went away mid-chunk: a partial run keeps what it did.
        _store(rows, [r.feature_id for r in rows] if replace else [], method, model)
        outcome.explained += len(rows)
        if fatal is not None:
            raise fatal
        if on_progress:
            on_progress(outcome.skipped + outcome.explained + len(outcome.failed), total)
    return outcome


def _short(feature: Feature) -> str:
    return f"L{feature.layer}/{feature.index}"


def _examples_of(
    features: list[Feature], pools: dict[tuple[int, int], list[tuple[str, ...]]]
) -> dict[int, FeatureExamples]:
    rows: dict[int, list[ActivationExample]] = defaultdict(list)
    for row in ActivationExample.objects.filter(feature__in=features).order_by("feature", "rank"):
        rows[row.feature_id].append(row)
    out = {}
    for feature in features:
        key = (feature.transcoder_set_id, feature.layer)
        if key not in pools:
            pools[key] = silent_windows(*key)
        out[feature.pk] = feature_examples(
            rows[feature.pk], pools[key], seed=silent_seed(feature.layer, feature.index)
        )
    return out


def _explain_llm(
    features: list[Feature],
    examples: dict[int, FeatureExamples],
    llm: LLM,
    outcome: Outcome,
) -> tuple[dict[int, pipeline.Result | None], LLMError | None]:
    """The chunk's features on a thread pool (the LLM's semaphore bounds the requests): their
    results, and the fatal error that stopped some of them, if one did."""

    def one(feature: Feature) -> pipeline.Result | None:
        try:
            return pipeline.explain_llm(examples[feature.pk], llm)
        except LLMError as exc:
            if exc.fatal:
                raise
            outcome.failed[_short(feature)] = str(exc)
            return None

    with ThreadPoolExecutor(max_workers=max(1, llm.config.concurrency)) as pool:
        futures = {f.pk: pool.submit(one, f) for f in features}
        results: dict[int, pipeline.Result | None] = {}
        fatal: LLMError | None = None
        for pk, future in futures.items():
            try:
                results[pk] = future.result()
            except LLMError as exc:
                fatal = fatal or exc
    return results, fatal
