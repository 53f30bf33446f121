"""Explain one feature and score the explanation on examples the explainer never saw."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from autointerp import llm as llm_roles
from autointerp import scoring, token_pattern
from autointerp.examples import FeatureExamples, split

TOKEN_PATTERN = token_pattern.METHOD
LLM = "llm"
METHODS = (TOKEN_PATTERN, LLM)
SCORERS = (scoring.SIMULATION, scoring.DETECTION, scoring.FUZZING)


@dataclass(frozen=True)
class Result:
    text: str
    method: str  # TOKEN_PATTERN or LLM
    model: str  # the explainer: "token-pattern" or the LLM's name
    scores: list[scoring.Score]
    usage: dict[str, int] | None = None  # LLM token usage over every call for this feature
    details: dict[str, Any] = field(default_factory=dict)  # e.g. the token patterns

    @property
    def score(self) -> float | None:
        """The simulation score: what explanations are ranked by."""
        return next((s.value for s in self.scores if s.method == scoring.SIMULATION), None)

    def scores_dict(self) -> dict[str, dict[str, object]]:
        return {s.method: s.to_dict() for s in self.scores}


def explain_token_pattern(
    examples: FeatureExamples, *, scorers: Sequence[str] = SCORERS
) -> Result | None:
    """None when the feature has no activating examples to explain."""
    parts = split(examples)
    if not parts.explain_activating:
        return None
    explanation = token_pattern.explain(parts.explain)
    judge = token_pattern.TokenPatternJudge(explanation)
    return Result(
        explanation.text,
        TOKEN_PATTERN,
        TOKEN_PATTERN,
        scoring.score_all(judge, parts, methods=scorers),
        details=explanation.to_dict(),
    )


def explain_llm(
    examples: FeatureExamples, llm: llm_roles.LLM, *, scorers: Sequence[str] = SCORERS
) -> Result | None:
    """The LLM writes the explanation from the explainer's activating examples, then simulates
    and judges the held-out ones. Raises ``llm.LLMError``."""
    parts = split(examples)
    if not parts.explain_activating:
        return None
    usage = llm_roles.Usage()
    text = llm_roles.explain(llm, parts.explain_activating, usage=usage)
    judge = llm_roles.LLMJudge(llm, text, usage=usage)
    scores = scoring.score_all(judge, parts, methods=scorers)
    return Result(
        text,
        LLM,
        llm.config.model,
        scores,
        usage=usage.to_dict(),
        details={"simulation_values": "logprobs" if judge.used_logprobs else "parsed"},
    )
