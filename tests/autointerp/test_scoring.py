"""Scorers: Pearson simulation scores and balanced accuracy, with judges of known quality."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from autointerp import scoring
from autointerp.examples import Example, Split, split
from tests.autointerp.synthetic import feature, on_token

PARTS = split(feature(on_token(" Austin"), [(" Austin",)]))


class Oracle:
    """Knows the truth (a perfect judge), or always answers ``constant``."""

    model = "oracle"

    def __init__(self, constant: bool | None = None) -> None:
        self.constant = constant

    def simulate(self, examples: Sequence[Example]) -> list[list[float]]:
        return [list(e.values) for e in examples]

    def detect(self, examples: Sequence[Example]) -> list[bool]:
        if self.constant is not None:
            return [self.constant] * len(examples)
        return [e.is_activating for e in examples]

    def fuzz(self, items: Sequence[tuple[tuple[str, ...], frozenset[int]]]) -> list[bool]:
        if self.constant is not None:
            return [self.constant] * len(items)
        return [all(tokens[i] == " Austin" for i in marked) for tokens, marked in items]


def test_a_perfect_judge_gets_balanced_accuracy_one() -> None:
    detection = scoring.detection(Oracle(), PARTS)
    fuzzing = scoring.fuzzing(Oracle(), PARTS)
    assert detection is not None
    assert detection.value == 1.0
    assert fuzzing is not None
    assert fuzzing.value == 1.0


@pytest.mark.parametrize("answer", [True, False])
def test_a_constant_judge_gets_balanced_accuracy_one_half(answer: bool) -> None:
    detection = scoring.detection(Oracle(answer), PARTS)
    fuzzing = scoring.fuzzing(Oracle(answer), PARTS)
    assert detection is not None
    assert detection.value == 0.5
    assert fuzzing is not None
    assert fuzzing.value == 0.5


def test_each_score_records_its_method_judge_and_sample_sizes() -> None:
    score = scoring.simulation(Oracle(), PARTS)
    assert score is not None
    assert score.to_dict() == {
        "method": "simulation",
        "value": 1.0,
        "judge": "oracle",
        "n_activating": len(PARTS.held_out),
        "n_non_activating": len(PARTS.non_activating),
        "n_tokens": sum(len(e.tokens) for e in PARTS.scored),
    }


def test_pearson_is_one_for_a_scaled_copy_minus_one_reversed_and_zero_when_constant() -> None:
    assert scoring.pearson([0, 1, 2, 3], [0, 10, 20, 30]) == pytest.approx(1.0)
    assert scoring.pearson([0, 1, 2, 3], [3, 2, 1, 0]) == pytest.approx(-1.0)
    assert scoring.pearson([1, 1, 1, 1], [0, 1, 0, 1]) == 0.0


def test_balanced_accuracy_weighs_both_classes_equally() -> None:
    # 9 of 9 negatives right, 1 of 3 positives right.
    truth = [True] * 3 + [False] * 9
    predicted = [True, False, False] + [False] * 9
    assert scoring.balanced_accuracy(truth, predicted) == pytest.approx((1 / 3 + 1) / 2)
    with pytest.raises(ValueError, match="both classes"):
        scoring.balanced_accuracy([True, True], [True, False])


def test_fuzzing_marks_the_firing_tokens_right_and_as_many_silent_ones_wrong() -> None:
    items, truth = scoring.fuzz_items(PARTS.held_out)
    for (tokens, marked), right in zip(items, truth, strict=True):
        assert all((tokens[i] == " Austin") == right for i in marked)
    assert truth.count(True) == len(PARTS.held_out)


def test_without_silent_examples_only_simulation_and_fuzzing_are_scored() -> None:
    parts = Split(PARTS.explain, PARTS.held_out, ())
    methods = [s.method for s in scoring.score_all(Oracle(), parts, methods=scoring_methods())]
    assert methods == ["simulation", "fuzzing"]


def scoring_methods() -> list[str]:
    return [scoring.SIMULATION, scoring.DETECTION, scoring.FUZZING]


def test_the_job_contract_offers_exactly_the_pipelines_methods() -> None:
    from autointerp import pipeline
    from contract import explain_params

    assert explain_params.METHODS == pipeline.METHODS
