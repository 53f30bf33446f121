"""A feature's examples and the split between what an explainer sees and what scores it.

An example is a window of tokens with the feature's activation on each (a dashboard's top or
quantile example, or a window where the feature does not fire). The split is deterministic:
alternate examples of each kind go to the explainer and to scoring, so an explanation is never
scored on the examples it was written from, and reruns score the same examples.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

TOP = "top"
QUANTILE = "quantile"
NON_ACTIVATING = "non_activating"


@dataclass(frozen=True)
class Example:
    tokens: tuple[str, ...]
    values: tuple[float, ...]  # the feature's activation on each token; 0 where it is silent
    kind: str = TOP  # TOP, QUANTILE or NON_ACTIVATING

    def __post_init__(self) -> None:
        if len(self.tokens) != len(self.values):
            raise ValueError(
                f"an example has {len(self.tokens)} tokens but {len(self.values)} values"
            )

    @property
    def max_value(self) -> float:
        return max(self.values, default=0.0)

    @property
    def is_activating(self) -> bool:
        return self.max_value > 0


@dataclass(frozen=True)
class FeatureExamples:
    """Everything known about one feature's behaviour, strongest examples first."""

    top: tuple[Example, ...] = ()
    quantiles: tuple[Example, ...] = ()
    non_activating: tuple[Example, ...] = ()

    @property
    def activating(self) -> tuple[Example, ...]:
        return tuple(e for e in (*self.top, *self.quantiles) if e.is_activating)


@dataclass(frozen=True)
class Split:
    explain: tuple[Example, ...]  # what an explainer may read (activating and not)
    held_out: tuple[Example, ...]  # activating examples the explanation is scored on
    non_activating: tuple[Example, ...]  # silent examples the explanation is scored on

    @property
    def explain_activating(self) -> tuple[Example, ...]:
        return tuple(e for e in self.explain if e.is_activating)

    @property
    def scored(self) -> tuple[Example, ...]:
        return (*self.held_out, *self.non_activating)


def _halves(examples: Iterable[Example]) -> tuple[list[Example], list[Example]]:
    seen: list[Example] = []
    kept: list[Example] = []
    for i, example in enumerate(examples):
        (seen if i % 2 == 0 else kept).append(example)
    return seen, kept


def split(examples: FeatureExamples) -> Split:
    """Even-numbered examples of each kind (0, 2, ...) to the explainer, odd ones to scoring:
    both sides get strong and weak activations alike."""
    top_seen, top_kept = _halves(e for e in examples.top if e.is_activating)
    quantile_seen, quantile_kept = _halves(e for e in examples.quantiles if e.is_activating)
    silent_seen, silent_kept = _halves(examples.non_activating)
    return Split(
        explain=(*top_seen, *quantile_seen, *silent_seen),
        held_out=(*top_kept, *quantile_kept),
        non_activating=tuple(silent_kept),
    )


def sample_non_activating(
    windows: Sequence[Sequence[str]], *, exclude: Iterable[Sequence[str]], n: int, seed: int
) -> tuple[Example, ...]:
    """``n`` distinct windows drawn (seeded) from ``windows``, as silent examples.

    For dashboards that record no silent windows: the caller passes windows from other features'
    dashboards of the same layer, whose activation on this feature was not recorded and is taken
    as 0 (true for all but a share of about density × window length of them). Windows that are
    among this feature's own examples (``exclude``) are never drawn.
    """
    excluded = {tuple(w) for w in exclude}
    rng = random.Random(seed)
    # Enough draws that every excluded window could be among them and n still remain.
    draws = rng.sample(range(len(windows)), min(len(windows), n + len(excluded)))
    chosen: list[tuple[str, ...]] = []
    for i in draws:
        window = tuple(windows[i])
        if window not in excluded and window not in chosen:
            chosen.append(window)
            if len(chosen) == n:
                break
    return tuple(Example(w, (0.0,) * len(w), NON_ACTIVATING) for w in chosen)
