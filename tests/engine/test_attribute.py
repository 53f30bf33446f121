"""attribute(): targets, special token, feature selection, progress and cancellation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from inference.engine import (
    AttributionCancelled,
    CustomTarget,
    Graph,
    LogitDiff,
    ReplacementModel,
    attribute,
    attribution,
    load_transcoders,
)
from inference.engine.attribution import _position_groups

from .builders import save_plt, tiny_model
from .conftest import PROMPT


def test_logit_targets_stop_where_cumulative_probability_crosses(
    llama_graph: Graph, llama: ReplacementModel
) -> None:
    probs = torch.softmax(_last_logits(llama), -1)
    top = torch.topk(probs, 10)
    cumulative = top.values.cumsum(0)
    # The defaults: the most probable tokens up to the one whose cumulative probability reaches
    # 0.95 (included), and never more than 10.
    k = min(10, int((cumulative < 0.95).sum()) + 1)
    assert llama_graph.n_logits == k
    assert llama_graph.logit_tokens.tolist() == top.indices[:k].tolist()
    torch.testing.assert_close(llama_graph.logit_probabilities, top.values[:k])
    # A goal that the third token's cumulative probability reaches, and the second's does not.
    goal = float(cumulative[1] + cumulative[2]) / 2
    three = attribute(PROMPT, llama, desired_logit_prob=goal, batch_size=32)
    assert three.logit_tokens.tolist() == top.indices[:3].tolist()
    torch.testing.assert_close(three.logit_probabilities, top.values[:3])


def _last_logits(rm: ReplacementModel) -> torch.Tensor:
    with torch.no_grad():
        return rm.model(input_ids=torch.tensor([[1, *PROMPT]])).logits[0, -1]


def test_special_token_is_prepended_and_its_position_has_no_features(llama_graph: Graph) -> None:
    assert llama_graph.input_tokens.tolist() == [1, *PROMPT]
    assert (llama_graph.active_features[:, 1] > 0).all()
    error_cols = llama_graph.error_offset + torch.arange(llama_graph.n_layers) * llama_graph.n_pos
    assert llama_graph.adjacency[:, error_cols].abs().sum() == 0


def test_a_prompt_starting_with_a_special_token_is_kept_as_given(llama: ReplacementModel) -> None:
    assert llama.tokenize([2, 5, 6]).tolist() == [2, 5, 6]


def test_logit_difference_target_is_the_difference_of_two_logit_rows(
    llama: ReplacementModel,
) -> None:
    a, b = 10, 20
    diff = attribute(PROMPT, llama, attribution_targets=LogitDiff(a, b), batch_size=64)
    pair = attribute(PROMPT, llama, attribution_targets=[a, b], batch_size=64)
    assert diff.logit_tokens.tolist() == [llama.unembed_weight.shape[0]]  # virtual id
    assert pair.logit_tokens.tolist() == [a, b]
    torch.testing.assert_close(
        diff.adjacency[-1, : diff.logit_offset],
        pair.adjacency[-2, : pair.logit_offset] - pair.adjacency[-1, : pair.logit_offset],
        atol=1e-5,
        rtol=1e-4,
    )


def test_custom_direction_target_uses_the_given_weight(llama: ReplacementModel) -> None:
    vector = torch.randn(llama.d_model, generator=torch.Generator().manual_seed(3))
    graph = attribute(
        PROMPT, llama, attribution_targets=[CustomTarget("mine", 0.25, vector)], batch_size=64
    )
    assert graph.logit_labels == ["mine"]
    assert graph.logit_probabilities.tolist() == [0.25]
    assert graph.adjacency[-1].abs().sum() > 0


def test_bad_targets_are_refused(llama: ReplacementModel) -> None:
    with pytest.raises(ValueError, match="target"):
        attribute(PROMPT, llama, attribution_targets=[10_000])
    with pytest.raises(ValueError, match="empty"):
        attribute([], llama)


def test_max_feature_nodes_keeps_the_most_influential_features(
    llama: ReplacementModel, llama_graph: Graph
) -> None:
    small = attribute(PROMPT, llama, max_feature_nodes=15, batch_size=4)
    assert small.n_features == 15
    full_rows = llama_graph.adjacency[llama_graph.logit_offset :, : llama_graph.n_features].abs()
    logit_share = (full_rows / full_rows.sum(1, keepdim=True)).T @ llama_graph.logit_probabilities
    # 15 < update_interval * batch_size: one ranking, from the logit rows alone, picks them all
    assert set(small.selected_features.tolist()) == set(
        torch.topk(logit_share, 15).indices.tolist()
    )
    # the selected features' rows are the same rows as in the full graph, restricted
    cols = torch.cat(
        [small.selected_features, torch.arange(llama_graph.n_features, llama_graph.n_nodes)]
    )
    torch.testing.assert_close(
        small.adjacency[:15], llama_graph.adjacency[small.selected_features][:, cols]
    )


def test_progress_is_reported_per_phase_and_reaches_one(llama: ReplacementModel) -> None:
    calls: list[tuple[str, float]] = []
    attribute(PROMPT, llama, batch_size=50, on_progress=lambda p, f: calls.append((p, f)))
    phases = [p for p, _ in calls]
    assert phases[0] == "forward"
    assert set(phases) == {"forward", "logits", "features"}
    for phase in ("forward", "logits", "features"):
        fractions = [f for p, f in calls if p == phase]
        assert fractions == sorted(fractions)
        assert fractions[-1] == 1.0


def test_should_stop_cancels_between_batches(llama: ReplacementModel) -> None:
    polls = []

    def stop() -> bool:
        polls.append(1)
        return len(polls) > 3

    with pytest.raises(AttributionCancelled):
        attribute(PROMPT, llama, batch_size=8, should_stop=stop)
    assert len(polls) == 4


def test_bfloat16_graph_is_close_to_the_float32_graph(tmp_path: Path, llama_graph: Graph) -> None:
    config = save_plt(tmp_path / "tc", jumprelu=True)
    model = tiny_model("llama")
    nn.Module.to(model, torch.bfloat16)
    rm = ReplacementModel.from_parts(model, load_transcoders(config))
    graph = attribute(PROMPT, rm, batch_size=32)
    assert graph.adjacency.dtype == torch.float32
    assert graph.logit_tokens[0] == llama_graph.logit_tokens[0]
    # Token edges depend only on the frozen model, not on which features fire near thresholds.
    ref = llama_graph.adjacency[
        llama_graph.logit_offset, llama_graph.token_offset : llama_graph.logit_offset
    ]
    low = graph.adjacency[graph.logit_offset, graph.token_offset : graph.logit_offset]
    torch.testing.assert_close(low, ref, atol=0.03 * float(ref.abs().max()), rtol=0.03)


def test_position_groups_cover_every_feature_once_each_below_its_prefix_end() -> None:
    g = torch.Generator().manual_seed(0)
    layers = torch.randint(0, 6, (300,), generator=g)
    positions = torch.randint(1, 40, (300,), generator=g).sort().values
    for forward_cost in (0.0, 7.0, 1e9):
        groups = _position_groups(layers, positions, 40, 16, forward_cost)
        members = torch.cat([group.members for group in groups])
        assert sorted(members.tolist()) == list(range(300))
        for group in groups:
            assert int(positions[group.members].max()) < group.end <= 40
            keys = layers[group.members] * 40 + positions[group.members]
            assert torch.equal(keys, keys.sort().values)  # batches follow the layer order
    # free forward passes: narrow groups; an unaffordable one: the whole prompt
    assert len(_position_groups(layers, positions, 40, 16, 0.0)) > 1
    assert [g.end for g in _position_groups(layers, positions, 40, 16, 1e9)] == [40]


@pytest.mark.parametrize("family", ["llama", "gemma3"])
def test_rows_over_prefix_passes_equal_rows_over_the_whole_prompt(
    tmp_path: Path, family: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = save_plt(tmp_path / "tc", jumprelu=True)
    rm = ReplacementModel.from_parts(tiny_model(family), load_transcoders(config))
    prompt = [5, 9, 7, 12, 30, 8, 14, 21, 6, 11]
    monkeypatch.setattr(attribution, "_forward_cost", lambda _model: 1e9)
    whole = attribute(prompt, rm, batch_size=8)
    monkeypatch.setattr(attribution, "_forward_cost", lambda _model: 0.0)
    by_position = attribute(prompt, rm, batch_size=8)
    features = by_position.active_features
    groups = _position_groups(features[:, 0], features[:, 1], len(prompt) + 1, 8, 0.0)
    assert len(groups) > 2  # several prefix passes
    assert torch.equal(whole.active_features, by_position.active_features)
    scale = whole.adjacency.abs().max()
    torch.testing.assert_close(by_position.adjacency / scale, whole.adjacency / scale)
