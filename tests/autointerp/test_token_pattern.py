"""The token-pattern explainer on synthetic features whose behaviour is known."""

from __future__ import annotations

import pytest

from autointerp import scoring
from autointerp.examples import split
from autointerp.pipeline import explain_token_pattern
from autointerp.token_pattern import Pattern, TokenPatternExplanation, TokenPatternJudge, explain
from tests.autointerp.synthetic import after, feature, on_token

AUSTIN = feature(on_token(" Austin"), [(" Austin",)])


def test_a_feature_firing_on_one_token_is_explained_as_that_token_and_scores_one() -> None:
    result = explain_token_pattern(AUSTIN)
    assert result is not None
    assert result.text == 'fires on " Austin"'
    scores = result.scores_dict()
    assert scores["simulation"]["value"] == pytest.approx(1.0)
    assert scores["detection"]["value"] == 1.0
    assert scores["fuzzing"]["value"] == 1.0


def test_a_wrong_explanation_of_it_scores_about_zero() -> None:
    wrong = TokenPatternExplanation((Pattern((), " Paris", 5.0),))
    parts = split(AUSTIN)
    judge = TokenPatternJudge(wrong)
    simulation = scoring.simulation(judge, parts)
    detection = scoring.detection(judge, parts)
    assert simulation is not None
    assert abs(simulation.value) < 0.15
    # " Paris" is as common in silent windows as in activating ones: detection is chance.
    assert detection is not None
    assert detection.value == pytest.approx(0.5, abs=0.2)


def test_it_finds_the_shortest_left_context_that_makes_the_feature_fire() -> None:
    # " Austin" fires only after " capital of", never after " mayor of" or " near": the
    # silent examples show it often enough that neither " Austin" nor " of Austin" is reliable.
    mayor = (" mayor", " of", " Austin")
    examples = feature(
        after([" capital", " of"], " Austin"),
        [(" capital", " of", " Austin"), mayor, mayor, (" near", " Austin")],
        n_silent=40,
    )
    result = explain_token_pattern(examples)
    assert result is not None
    assert result.text == 'fires on " Austin" after "capital of"'
    assert result.score == pytest.approx(1.0)


def test_the_explanation_names_the_strongest_pattern_first_and_the_others_after_also() -> None:
    def fires(tokens: tuple[str, ...], i: int) -> float:
        return {" Austin": 6.0, " Houston": 2.0}.get(tokens[i], 0.0)

    result = explain_token_pattern(feature(fires, [(" Austin",), (" Houston",)]))
    assert result is not None
    assert result.text == 'fires on " Austin"; also " Houston"'
    # The simulator predicts each token's own mean activation, so the scale is right too.
    explanation = TokenPatternExplanation.from_dict(result.details)
    assert explanation.simulate([" the", " Austin", " Houston"]) == [0.0, 6.0, 2.0]


def test_it_is_never_scored_on_the_examples_it_was_written_from() -> None:
    parts = split(AUSTIN)
    assert not set(parts.explain) & set(parts.scored)
    assert parts.held_out
    assert parts.non_activating
    assert {e.kind for e in parts.held_out} == {"top", "quantile"}


def test_the_patterns_round_trip_through_plain_data() -> None:
    explanation = explain(split(AUSTIN).explain)
    assert TokenPatternExplanation.from_dict(explanation.to_dict()) == explanation


def test_a_feature_with_no_activating_examples_gets_no_explanation() -> None:
    assert explain_token_pattern(feature(on_token(" Nowhere"), [(" Paris",)])) is None
