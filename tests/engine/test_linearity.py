"""Every adjacency column equals the effect of its source, measured by intervention on the
frozen model (see frozen_reference.py), for each model family and hook-point choice."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from inference.engine import ReplacementModel, attribute, load_transcoders
from inference.engine.graph import Graph

from .builders import save_clt, save_plt, tiny_model
from .frozen_reference import FrozenReplay

PROMPT = [5, 9, 7, 12, 30, 8]

CASES = [
    ("llama", "mlp.hook_in", "mlp.hook_out", {}),
    ("qwen2", "hook_resid_mid", "mlp.hook_out", {"skip": True}),
    ("qwen3", "mlp.hook_in", "mlp.hook_out", {"jumprelu": True}),
    ("gemma2", "ln2.hook_normalized", "hook_mlp_out", {"jumprelu": True}),
    ("gemma3", "mlp.hook_in", "mlp.hook_out", {}),
    ("gpt2", "mlp.hook_in", "mlp.hook_out", {"skip": True}),
]


def _target_values(
    graph: Graph, rm: ReplacementModel, dx: list[torch.Tensor], dresid: torch.Tensor
) -> torch.Tensor:
    """Change of every feature pre-activation and target logit, in adjacency row order."""
    tc = rm.transcoders
    values = []
    for k in range(graph.n_features):
        layer, pos, feat = graph.active_features[graph.selected_features[k]].tolist()
        values.append(tc.W_enc[layer][feat].float() @ dx[layer][pos])
    unembed = rm.unembed_weight.float()
    for token in graph.logit_tokens.tolist():
        values.append((unembed[token] - unembed.mean(0)) @ dresid[-1])
    return torch.stack(values)


def _check_column(graph: Graph, column: int, effect: torch.Tensor) -> None:
    rows = torch.cat(
        [torch.arange(graph.n_features), torch.arange(graph.logit_offset, graph.n_nodes)]
    )
    expected = graph.adjacency[rows, column]
    scale = effect.abs().max().item() + 1e-6
    torch.testing.assert_close(expected, effect, atol=2e-5 * scale + 1e-6, rtol=1e-4)


def _feature_deltas(rm: ReplacementModel, graph: Graph, k: int) -> dict[int, torch.Tensor]:
    active = int(graph.selected_features[k])
    layer, pos, feat = graph.active_features[active].tolist()
    rows = rm.transcoders.decoders[layer].rows(torch.tensor([feat]), rm.device, torch.float32)[0]
    deltas = {}
    for offset in range(rows.shape[0]):
        delta = torch.zeros(graph.n_pos, rm.d_model)
        delta[pos] = graph.activation_values[active] * rows[offset]
        deltas[layer + offset] = delta
    return deltas


def _error_vector(
    rm: ReplacementModel, replay: FrozenReplay, graph: Graph, layer: int
) -> torch.Tensor:
    """Output-hook value minus the transcoder reconstruction, recomputed from the clean pass."""
    tc = rm.transcoders
    recon = tc.b_dec[layer].float().expand(graph.n_pos, -1).clone()
    for active in range(len(graph.active_features)):
        src, pos, feat = graph.active_features[active].tolist()
        if src <= layer and (tc.cross_layer or src == layer):
            row = tc.decoders[src].rows(torch.tensor([feat]), rm.device, torch.float32)[0]
            recon[pos] += graph.activation_values[active] * row[layer - src]
    skip = tc.skip[layer]
    if skip is not None:
        recon += replay.clean_inputs[layer].float() @ skip
    return replay.clean_outputs[layer][0].float() - recon


def _check_all_sources(rm: ReplacementModel, graph: Graph) -> None:
    replay = FrozenReplay(rm, graph.input_tokens)
    for k in torch.linspace(0, graph.n_features - 1, 5).long().tolist():
        dx, dresid = replay.effect(out_deltas=_feature_deltas(rm, graph, k))
        _check_column(graph, k, _target_values(graph, rm, dx, dresid))
    for layer, pos in [(0, 1), (rm.n_layers - 1, graph.n_pos - 1), (1, 3)]:
        delta = torch.zeros(graph.n_pos, rm.d_model)
        delta[pos] = _error_vector(rm, replay, graph, layer)[pos]
        dx, dresid = replay.effect(out_deltas={layer: delta})
        _check_column(
            graph,
            graph.error_offset + layer * graph.n_pos + pos,
            _target_values(graph, rm, dx, dresid),
        )
    assert replay.clean_embed is not None
    for pos in (0, 2, graph.n_pos - 1):
        delta = torch.zeros(graph.n_pos, rm.d_model)
        delta[pos] = replay.clean_embed[0, pos]
        dx, dresid = replay.effect(embed_delta=delta)
        _check_column(graph, graph.token_offset + pos, _target_values(graph, rm, dx, dresid))


@pytest.mark.parametrize(
    ("family", "in_hook", "out_hook", "options"), CASES, ids=[c[0] for c in CASES]
)
def test_each_adjacency_column_is_the_frozen_effect_of_its_source(
    tmp_path: Path, family: str, in_hook: str, out_hook: str, options: dict
) -> None:
    config = save_plt(tmp_path / "tc", input_hook=in_hook, output_hook=out_hook, **options)
    rm = ReplacementModel.from_parts(tiny_model(family), load_transcoders(config))
    graph = attribute(PROMPT, rm, batch_size=16)
    assert graph.n_features > 20  # the check is only meaningful with many active features
    _check_all_sources(rm, graph)


def test_cross_layer_transcoder_columns_are_the_frozen_effects(tmp_path: Path) -> None:
    config = save_clt(tmp_path / "clt", jumprelu=True, skip=True)
    rm = ReplacementModel.from_parts(tiny_model("llama"), load_transcoders(config))
    assert rm.transcoders.cross_layer
    assert rm.transcoders.skip[0] is not None
    graph = attribute(PROMPT, rm, batch_size=16)
    _check_all_sources(rm, graph)


def test_feature_rows_sum_to_pre_activation_on_a_bias_free_model(tmp_path: Path) -> None:
    config = save_plt(tmp_path / "tc")
    tc = load_transcoders(config)
    tc.b_dec = [torch.zeros_like(b) for b in tc.b_dec]  # decoder biases would be unattributed
    rm = ReplacementModel.from_parts(tiny_model("llama"), tc)
    graph = attribute(PROMPT, rm, batch_size=16)
    replay = FrozenReplay(rm, graph.input_tokens)
    # The special token's MLP outputs are zeroed out of the graph, so their effect is the only
    # part of a pre-activation no node accounts for: add it back.
    bos_outputs = {}
    for layer in range(rm.n_layers):
        delta = torch.zeros(graph.n_pos, rm.d_model)
        delta[0] = replay.clean_outputs[layer][0, 0]
        bos_outputs[layer] = delta
    dx, dresid = replay.effect(out_deltas=bos_outputs)
    unattributed = _target_values(graph, rm, dx, dresid)
    clean_x = [x.float() for x in (replay.clean_inputs[i] for i in range(rm.n_layers))]
    for k in range(graph.n_features):
        layer, pos, feat = graph.active_features[graph.selected_features[k]].tolist()
        pre_minus_bias = tc.W_enc[layer][feat] @ clean_x[layer][pos]
        row_sum = graph.adjacency[k].sum() + unattributed[k]
        torch.testing.assert_close(row_sum, pre_minus_bias, atol=1e-4, rtol=1e-4)
