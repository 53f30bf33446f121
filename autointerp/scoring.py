"""Scores of an explanation on held-out examples, whoever plays the judge.

- **simulation** (OpenAI, Bills et al. 2023): the judge predicts every token's activation from
  the explanation alone; the score is the Pearson correlation with the true activations over all
  tokens of the held-out activating and silent examples (1 = perfect, 0 = no better than
  constant; a constant prediction scores 0).
- **detection** (eai-delphi): the judge says which examples the feature fires in; the score is
  the balanced accuracy over held-out activating and silent examples.
- **fuzzing** (eai-delphi): each held-out activating example is shown twice, once with the
  tokens the feature fires on marked and once with as many other tokens marked; the judge says
  whether the marks are right; the score is the balanced accuracy.

A judge is bound to one explanation (``token_pattern.TokenPatternJudge``, ``llm.LLMJudge``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Protocol

from autointerp.examples import Example, Split

SIMULATION = "simulation"
DETECTION = "detection"
FUZZING = "fuzzing"


class Judge(Protocol):
    model: str  # who simulates and judges ("token-pattern" or the LLM's name)

    def simulate(self, examples: Sequence[Example]) -> list[list[float]]:
        """Predicted activation of every token of every example (any scale)."""
        ...

    def detect(self, examples: Sequence[Example]) -> list[bool]:
        """For each example: does the feature fire somewhere in it?"""
        ...

    def fuzz(self, items: Sequence[tuple[tuple[str, ...], frozenset[int]]]) -> list[bool]:
        """For each (tokens, marked positions): are the marked tokens the ones it fires on?"""
        ...


@dataclass(frozen=True)
class Score:
    method: str  # SIMULATION, DETECTION or FUZZING
    value: float
    judge: str  # the simulator/judge model
    n_activating: int  # held-out examples the score was computed on, each kind
    n_non_activating: int
    n_tokens: int | None = None  # simulation only: tokens correlated

    def to_dict(self) -> dict[str, object]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def pearson(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Correlation of two equally long sequences; 0 when either is constant."""
    if len(xs) != len(ys):
        raise ValueError(f"{len(xs)} predictions for {len(ys)} activations")
    n = len(xs)
    if n < 2:
        return 0.0
    mx, my = sum(xs) / n, sum(ys) / n
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    if sxx <= 0 or syy <= 0:
        return 0.0
    return max(-1.0, min(1.0, sxy / math.sqrt(sxx * syy)))


def balanced_accuracy(truth: Sequence[bool], predicted: Sequence[bool]) -> float:
    """Mean of the true-positive and true-negative rates (0.5 for any constant answer)."""
    if len(truth) != len(predicted):
        raise ValueError(f"{len(predicted)} answers for {len(truth)} questions")
    positives = [p for t, p in zip(truth, predicted, strict=True) if t]
    negatives = [not p for t, p in zip(truth, predicted, strict=True) if not t]
    if not positives or not negatives:
        raise ValueError("balanced accuracy needs examples of both classes")
    return (sum(positives) / len(positives) + sum(negatives) / len(negatives)) / 2


def simulation(judge: Judge, split: Split) -> Score | None:
    examples = split.scored
    if not split.held_out:
        return None
    predicted = judge.simulate(examples)
    xs = [v for row in predicted for v in row]
    ys = [v for example in examples for v in example.values]
    return Score(
        SIMULATION,
        pearson(xs, ys),
        judge.model,
        len(split.held_out),
        len(split.non_activating),
        len(ys),
    )


def detection(judge: Judge, split: Split) -> Score | None:
    if not split.held_out or not split.non_activating:
        return None
    examples = split.scored
    truth = [e.is_activating for e in examples]
    value = balanced_accuracy(truth, judge.detect(examples))
    return Score(DETECTION, value, judge.model, len(split.held_out), len(split.non_activating))


def fuzz_items(
    examples: Sequence[Example], *, seed: int = 0
) -> tuple[list[tuple[tuple[str, ...], frozenset[int]]], list[bool]]:
    """Each activating example marked right (its firing tokens) and, where it has enough silent
    tokens, marked wrong (as many silent tokens, drawn seeded); with the truth of each."""
    rng = random.Random(seed)
    items, truth = [], []
    for example in examples:
        firing = frozenset(i for i, v in enumerate(example.values) if v > 0)
        silent = [i for i, v in enumerate(example.values) if v <= 0]
        if not firing:
            continue
        items.append((example.tokens, firing))
        truth.append(True)
        if len(silent) >= len(firing):
            items.append((example.tokens, frozenset(rng.sample(silent, len(firing)))))
            truth.append(False)
    return items, truth


def fuzzing(judge: Judge, split: Split, *, seed: int = 0) -> Score | None:
    items, truth = fuzz_items(split.held_out, seed=seed)
    if all(truth) or not any(truth):
        return None
    value = balanced_accuracy(truth, judge.fuzz(items))
    return Score(FUZZING, value, judge.model, truth.count(True), truth.count(False))


def score_all(judge: Judge, split: Split, *, methods: Sequence[str]) -> list[Score]:
    """The scores of ``methods`` that the split has examples for, in that order."""
    scorers = {SIMULATION: simulation, DETECTION: detection, FUZZING: fuzzing}
    unknown = [m for m in methods if m not in scorers]
    if unknown:
        raise ValueError(f"unknown scoring methods: {', '.join(unknown)}")
    scores = (scorers[m](judge, split) for m in methods)
    return [s for s in scores if s is not None]
