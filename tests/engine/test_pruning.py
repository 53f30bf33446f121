"""Pruning, influence and graph scores on a five-node graph computed by hand.

Nodes: f0, f1 (features), err, tok, logit (p = 1). Edges (target <- source: weight):
logit <- f0: 3, logit <- f1: 1, f0 <- tok: 3, f0 <- err: 1, f1 <- tok: 1.
Normalised influence: f0 .75, f1 .25, tok .75*.75 + .25 = .8125, err .75*.25 = .1875.
"""

from __future__ import annotations

import pytest
import torch

from inference.engine.graph import Graph
from inference.engine.pruning import cumulative_threshold, graph_scores, prune

F0, F1, ERR, TOK, LOGIT = range(5)


def hand_graph() -> Graph:
    adjacency = torch.zeros(5, 5)
    adjacency[LOGIT, F0], adjacency[LOGIT, F1] = 3.0, -1.0  # sign must not matter
    adjacency[F0, TOK], adjacency[F0, ERR] = 3.0, 1.0
    adjacency[F1, TOK] = 1.0
    return Graph(
        input_string="x",
        input_tokens=torch.tensor([7]),
        input_token_strings=["x"],
        active_features=torch.tensor([[0, 0, 4], [0, 0, 9]]),
        activation_values=torch.tensor([1.5, 0.5]),
        selected_features=torch.tensor([0, 1]),
        target_rows=adjacency[[F0, F1, LOGIT]],  # the rows that can be non-zero
        logit_tokens=torch.tensor([11]),
        logit_probabilities=torch.tensor([1.0]),
        logit_labels=["y"],
        n_layers=1,
        vocab_size=20,
    )


def test_node_threshold_keeps_the_nodes_holding_that_share_of_influence() -> None:
    result = prune(hand_graph(), node_threshold=0.8, edge_threshold=1.0)
    # cumulative: tok .40625, f0 .78125, f1 .90625 -> 0.8 is reached at f1; err is dropped
    assert result.node_mask.tolist() == [True, True, False, True, True]
    torch.testing.assert_close(
        result.influence, torch.tensor([0.78125, 0.90625, 1.0, 0.40625, 1.0])
    )


def test_edge_threshold_then_drops_nodes_left_without_edges() -> None:
    result = prune(hand_graph(), node_threshold=0.8, edge_threshold=0.7)
    # edge scores: logit<-f0 .75, f0<-tok .75, logit<-f1 .25, f1<-tok .25; 0.7 keeps the first two
    edges = set(zip(result.edge_targets.tolist(), result.edge_sources.tolist(), strict=True))
    assert edges == {(LOGIT, F0), (F0, TOK)}
    assert result.node_mask.tolist() == [True, False, False, True, True]
    torch.testing.assert_close(result.edge_weights.sort().values, torch.tensor([3.0, 3.0]))


def test_replacement_and_completeness_scores() -> None:
    replacement, completeness = graph_scores(hand_graph())
    assert replacement == pytest.approx(0.8125 / (0.8125 + 0.1875))
    # only f0 has an error input (share .25), weighted by its influence + logit weight
    assert completeness == pytest.approx((0.75 * 0.75 + 0.25 + 0.1875 + 0.8125 + 1.0) / 3.0)


@pytest.mark.parametrize(("size", "density"), [(10, 1.0), (200_000, 1.0), (200_000, 0.05)])
@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.8, 0.98])
def test_cumulative_threshold_matches_a_full_sort(
    size: int, density: float, threshold: float
) -> None:
    g = torch.Generator().manual_seed(1)
    scores = torch.rand(size, generator=g) ** 6 * (torch.rand(size, generator=g) < density)
    ordered = torch.sort(scores.double(), descending=True).values
    cumulative = torch.cumsum(ordered, 0) / ordered.sum()
    expected = ordered[int(torch.searchsorted(cumulative, threshold))]
    assert cumulative_threshold(scores, threshold) == pytest.approx(float(expected))


def test_it_rejects_thresholds_outside_zero_one() -> None:
    with pytest.raises(ValueError, match="threshold"):
        prune(hand_graph(), node_threshold=1.5)
