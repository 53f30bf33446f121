"""The token-pattern explainer: the shortest left contexts that reliably make a feature fire.

In the spirit of N2G ("Neuron to Graph", Foote et al. 2023): for each token on which the feature
fires in the explainer's examples, find the shortest left context (the token alone, then one
token before it, ...) after which the feature fires at least ``min_precision`` of the times that
context occurs in those examples. The patterns that account for most of the activation are the
explanation, written out as ``fires on " Austin" after "capital of"; also " Texas"``.

It is offline, deterministic and exact: the same patterns simulate the feature (a token's
predicted activation is the mean activation its longest matching pattern had) and judge examples
for detection and fuzzing, so a token-pattern explanation is scored by the same rules an LLM's
is, with no model in the loop.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from autointerp.examples import Example

METHOD = "token-pattern"


@dataclass(frozen=True)
class Pattern:
    context: tuple[str, ...]  # the tokens right before ``token``, in text order
    token: str
    activation: float  # mean activation where it matched in the explainer's examples

    def matches(self, tokens: Sequence[str], i: int) -> bool:
        k = len(self.context)
        return tokens[i] == self.token and i >= k and tuple(tokens[i - k : i]) == self.context

    def describe(self) -> str:
        text = f'"{self.token}"'
        if self.context:
            text += f' after "{"".join(self.context).strip()}"'
        return text


@dataclass(frozen=True)
class TokenPatternExplanation:
    patterns: tuple[Pattern, ...]  # most activation explained first
    # The patterns by their last token, longest context first (what ``simulate`` looks up).
    _by_token: dict[str, tuple[Pattern, ...]] = field(
        init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        grouped: dict[str, list[Pattern]] = defaultdict(list)
        for p in sorted(self.patterns, key=lambda p: -len(p.context)):
            grouped[p.token].append(p)
        object.__setattr__(self, "_by_token", {t: tuple(ps) for t, ps in grouped.items()})

    @property
    def text(self) -> str:
        if not self.patterns:
            return "fires on no recognisable token pattern"
        first, *rest = self.patterns
        return "; ".join([f"fires on {first.describe()}", *(f"also {p.describe()}" for p in rest)])

    def simulate(self, tokens: Sequence[str]) -> list[float]:
        """Predicted activation per token: its longest matching pattern's, else 0."""
        by_token = self._by_token
        out = []
        for i, token in enumerate(tokens):
            candidates = by_token.get(token, ())
            match = next((p for p in candidates if p.matches(tokens, i)), None)
            out.append(match.activation if match is not None else 0.0)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "patterns": [
                {"context": list(p.context), "token": p.token, "activation": p.activation}
                for p in self.patterns
            ]
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TokenPatternExplanation:
        return cls(
            tuple(
                Pattern(tuple(p["context"]), p["token"], float(p["activation"]))
                for p in data["patterns"]
            )
        )


def explain(
    examples: Sequence[Example],
    *,
    max_context: int = 3,
    min_precision: float = 0.8,
    max_patterns: int = 5,
) -> TokenPatternExplanation:
    """Patterns for the feature whose ``examples`` these are (activating and silent ones: the
    silent ones show where a candidate pattern occurs without the feature firing).

    ``max_context``: the longest left context tried; ``min_precision``: the share of a context's
    occurrences on which the feature must fire; ``max_patterns``: how many the explanation keeps
    (those that account for the most activation).
    """
    # Every n-gram ending at every position (n = 1 .. max_context + 1) -> the values there.
    seen: dict[tuple[str, ...], list[float]] = defaultdict(list)
    for example in examples:
        for i, value in enumerate(example.values):
            for k in range(min(max_context, i) + 1):
                seen[tuple(example.tokens[i - k : i + 1])].append(value)

    mass: dict[tuple[str, ...], float] = defaultdict(float)
    for example in examples:
        for i, value in enumerate(example.values):
            if value <= 0:
                continue
            for k in range(min(max_context, i) + 1):
                gram = tuple(example.tokens[i - k : i + 1])
                values = seen[gram]
                if sum(v > 0 for v in values) >= min_precision * len(values):
                    mass[gram] += value
                    break

    best = sorted(mass, key=lambda g: (-mass[g], len(g), g))[:max_patterns]
    return TokenPatternExplanation(
        tuple(Pattern(g[:-1], g[-1], sum(seen[g]) / len(seen[g])) for g in best)
    )


class TokenPatternJudge:
    """The explanation's own patterns as simulator and judge (``scoring.Judge``)."""

    model = METHOD

    def __init__(self, explanation: TokenPatternExplanation) -> None:
        self.explanation = explanation
        self._cache: dict[tuple[str, ...], list[float]] = {}

    def simulate(self, examples: Sequence[Example]) -> list[list[float]]:
        return [self._predict(e.tokens) for e in examples]

    def detect(self, examples: Sequence[Example]) -> list[bool]:
        return [any(v > 0 for v in self._predict(e.tokens)) for e in examples]

    def fuzz(self, items: Sequence[tuple[tuple[str, ...], frozenset[int]]]) -> list[bool]:
        answers = []
        for tokens, marked in items:
            predicted = self._predict(tokens)
            answers.append(bool(marked) and all(predicted[i] > 0 for i in marked))
        return answers

    def _predict(self, tokens: tuple[str, ...]) -> list[float]:
        # The three scorers ask about the same held-out windows: simulate each once.
        if tokens not in self._cache:
            self._cache[tokens] = self.explanation.simulate(tokens)
        return self._cache[tokens]
