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
    load_transcoders,
)
from inference.engine.replacement import run_linearised
from inference.engine.rows import RowComputer, by_layer

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


def _autograd_rows(
    rm: ReplacementModel, tokens: torch.Tensor, computer: RowComputer, idx: torch.Tensor
) -> torch.Tensor:
    """The rows of active features `idx` from autograd through a fresh linearised forward pass:
    the gradient at every output hook and at the embeddings, dotted with the sources, one row
    at a time (independent of backward.py's batching, prefixes and layer order)."""
    trace = run_linearised(rm, tokens, autograd=True)
    assert trace.embed_leaf is not None
    out = torch.zeros(len(idx), computer.n_cols)
    for r, i in enumerate(idx.tolist()):
        layer, pos, _ = computer.active_features[i].tolist()
        seed = torch.zeros_like(trace.feature_inputs[layer])
        seed[0, pos] = computer.encoder_rows(torch.tensor([i]))[0]
        leaves = [trace.embed_leaf, *trace.output_leaves]
        grads = torch.autograd.grad(
            trace.feature_inputs[layer], leaves, seed, retain_graph=True, allow_unused=True
        )
        zero = torch.zeros_like(trace.embed_leaf)
        g_embed, *g_out = [(zero if g is None else g)[0] for g in grads]
        n = computer.n_pos
        out[r, computer.token_offset :] = (g_embed * computer.token_vectors).sum(-1)
        for j, g in enumerate(g_out):
            start = computer.error_offset + j * n
            out[r, start : start + n] = (g * computer.errors[j]).sum(-1)
            for src in range(j + 1) if computer.cross_layer else (j,):
                block = computer.blocks[src]
                decoders = block.padded(j - src, n, len(block.pos))[block.pos, block.slot]  # (k, d)
                cols = (g[block.pos] * decoders).sum(-1)
                out[r, block.start : block.start + len(block.pos)] += cols
    return out


@pytest.mark.parametrize(
    ("family", "in_hook", "out_hook", "options"),
    [
        ("llama", "mlp.hook_in", "mlp.hook_out", {"skip": True}),
        ("qwen2", "hook_resid_mid", "mlp.hook_out", {}),
        ("gemma2", "ln2.hook_normalized", "hook_mlp_out", {"skip": True}),
        ("gemma3", "mlp.hook_in", "mlp.hook_out", {"skip": True}),
        ("gpt2", "ln2.hook_normalized", "mlp.hook_out", {"skip": True}),
    ],
)
def test_batched_rows_equal_autograd_one_row_at_a_time(
    tmp_path: Path, family: str, in_hook: str, out_hook: str, options: dict
) -> None:
    config = save_plt(tmp_path / "tc", input_hook=in_hook, output_hook=out_hook, **options)
    rm = ReplacementModel.from_parts(tiny_model(family), load_transcoders(config))
    tokens = rm.tokenize([5, 9, 7, 12, 30, 8, 14, 21, 6, 11])
    computer = RowComputer(rm, run_linearised(rm, tokens))
    # One batch mixing layers and positions: it runs over the positions up to its last row's,
    # each row joining at its own layer.
    g = torch.Generator().manual_seed(0)
    idx = by_layer(
        torch.randperm(computer.n_active, generator=g)[:12], computer.active_features[:, 0]
    )
    layers, positions = computer.active_features[idx, 0], computer.active_features[idx, 1]
    assert len(set(layers.tolist())) > 1
    assert len(set(positions.tolist())) > 1
    ours = computer.rows(layers, positions, computer.encoder_rows(idx))
    reference = _autograd_rows(rm, tokens, computer, idx)
    scale = reference.abs().max()
    torch.testing.assert_close(ours / scale, reference / scale, atol=1e-6, rtol=0)


def test_rows_must_come_highest_layer_first(llama: ReplacementModel) -> None:
    computer = RowComputer(llama, run_linearised(llama, llama.tokenize(PROMPT)))
    with pytest.raises(ValueError, match="highest first"):
        computer.rows(torch.tensor([0, 2]), torch.tensor([3, 3]), torch.zeros(2, llama.d_model))


def test_a_graph_does_not_depend_on_the_batch_size(llama: ReplacementModel) -> None:
    one = attribute(PROMPT, llama, batch_size=1)
    many = attribute(PROMPT, llama, batch_size=64)
    scale = one.adjacency.abs().max()
    torch.testing.assert_close(many.adjacency / scale, one.adjacency / scale, atol=1e-6, rtol=0)
