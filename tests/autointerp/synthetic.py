"""Synthetic features whose behaviour is known exactly, built from seeded random sentences."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from autointerp.examples import NON_ACTIVATING, QUANTILE, TOP, Example, FeatureExamples

WORDS = [
    " the",
    " a",
    " city",
    " of",
    " is",
    " in",
    " big",
    " old",
    " river",
    " road",
    " and",
    " Paris",
    " Dallas",
    " mayor",
    " capital",
    " near",
    " Texas",
    " Rome",
    ".",
    ",",
]


def sentences(seed: int, n: int, length: int = 12) -> list[tuple[str, ...]]:
    rng = random.Random(seed)
    return [tuple(rng.choice(WORDS) for _ in range(length)) for _ in range(n)]


def with_phrase(window: tuple[str, ...], phrase: Sequence[str], at: int) -> tuple[str, ...]:
    return (*window[:at], *phrase, *window[at + len(phrase) :])


def feature(
    fires: Callable[[tuple[str, ...], int], float],
    phrases: Sequence[Sequence[str]],
    *,
    seed: int = 0,
    n_top: int = 10,
    n_quantile: int = 8,
    n_silent: int = 10,
) -> FeatureExamples:
    """Windows with one of ``phrases`` planted, valued by ``fires(tokens, i)``: the strongest are
    the top examples, a spread of the others the quantile examples, and windows where it never
    fires the silent ones."""
    rng = random.Random(seed)
    activating: list[Example] = []
    silent: list[Example] = []
    for window in sentences(seed, 4 * (n_top + n_quantile + n_silent)):
        planted = with_phrase(window, rng.choice(phrases), rng.randrange(2, 8))
        for tokens in (planted, window):
            values = tuple(fires(tokens, i) for i in range(len(tokens)))
            (activating if max(values) > 0 else silent).append(Example(tokens, values))
    activating.sort(key=lambda e: -e.max_value)
    top = tuple(Example(e.tokens, e.values, TOP) for e in activating[:n_top])
    # Like a dashboard's quantile intervals: spread evenly over the weaker activations.
    weaker = activating[n_top:]
    rest = [weaker[i * len(weaker) // n_quantile] for i in range(min(n_quantile, len(weaker)))]
    quantiles = tuple(Example(e.tokens, e.values, QUANTILE) for e in rest)
    silent_examples = tuple(Example(e.tokens, e.values, NON_ACTIVATING) for e in silent[:n_silent])
    return FeatureExamples(top, quantiles, silent_examples)


def on_token(token: str, value: float = 5.0) -> Callable[[tuple[str, ...], int], float]:
    return lambda tokens, i: value if tokens[i] == token else 0.0


def after(context: Sequence[str], token: str) -> Callable[[tuple[str, ...], int], float]:
    k = len(context)

    def fires(tokens: tuple[str, ...], i: int) -> float:
        return 4.0 if tokens[i] == token and i >= k and tokens[i - k : i] == tuple(context) else 0.0

    return fires
