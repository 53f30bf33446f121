"""The long-prompt memory choices (issue #19) give the same graph: decoder blocks built per batch
instead of held (rows.py), the ranking buffer offloaded to the host (attribution.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from inference.engine import Graph, ReplacementModel, attribute, load_transcoders
from inference.engine.replacement import run_linearised
from inference.engine.rows import RowComputer, by_layer

from .builders import save_clt, save_plt, tiny_model
from .conftest import PROMPT

LONGER = [5, 9, 7, 12, 30, 8, 14, 21, 6, 11]


@pytest.fixture(scope="module")
def clt(tmp_path_factory: pytest.TempPathFactory) -> ReplacementModel:
    config = save_clt(Path(tmp_path_factory.mktemp("clt")), jumprelu=True, skip=True)
    return ReplacementModel.from_parts(tiny_model("llama"), load_transcoders(config))


@pytest.fixture(scope="module")
def gemma_bf16(tmp_path_factory: pytest.TempPathFactory) -> ReplacementModel:
    config = save_plt(
        Path(tmp_path_factory.mktemp("gs")),
        input_hook="ln2.hook_normalized",
        output_hook="hook_mlp_out",
        jumprelu=True,
    )
    model = tiny_model("gemma2")
    nn.Module.to(model, torch.bfloat16)
    return ReplacementModel.from_parts(model, load_transcoders(config))


def _every_row(rm: ReplacementModel, hold: bool) -> torch.Tensor:
    """Every feature's row and a logit-like row at the last position, in mixed batches."""
    tokens = rm.tokenize(LONGER)
    computer = RowComputer(rm, run_linearised(rm, tokens), hold_decoder_blocks=hold)
    assert (computer.blocks[0].held is not None) == hold
    layers = computer.active_features[:, 0]
    order = torch.randperm(computer.n_active, generator=torch.Generator().manual_seed(0))
    out = torch.zeros(computer.n_active + 1, computer.n_cols)
    for c in range(0, computer.n_active, 7):  # batches spanning layers and positions
        idx = by_layer(order[c : c + 7], layers)
        out[idx] = computer.rows(
            layers[idx], computer.active_features[idx, 1], computer.encoder_rows(idx)
        )
    direction = torch.ones(1, rm.d_model, dtype=computer.token_vectors.dtype)
    out[-1] = computer.rows(
        torch.tensor([rm.n_layers]), torch.tensor([computer.n_pos - 1]), direction
    )[0]
    return out


@pytest.mark.parametrize("model", ["llama", "clt", "gemma_bf16"])
def test_decoder_blocks_built_per_batch_give_the_held_blocks_rows(
    model: str, request: pytest.FixtureRequest
) -> None:
    rm: ReplacementModel = request.getfixturevalue(model)
    held, per_batch = _every_row(rm, hold=True), _every_row(rm, hold=False)
    assert held[:, : held.shape[1] // 2].abs().sum() > 0  # feature columns are filled
    # the same products in the same dtype, contracted by the same GEMM shapes: bitwise equal
    assert torch.equal(per_batch, held)


def test_a_cross_layer_decoder_reads_one_output_layer_alone(tmp_path: Path) -> None:
    tc = load_transcoders(save_clt(tmp_path / "clt"))
    ids = torch.tensor([3, 0, 7])
    every = tc.decoders[1].rows(ids, torch.device("cpu"), torch.float32)  # (3, n_out, d)
    assert every.shape[1] > 1
    for out in range(every.shape[1]):
        one = tc.decoders[1].rows(ids, torch.device("cpu"), torch.float32, out_layer=out)
        assert torch.equal(one, every[:, out])


def _equal_graphs(a: Graph, b: Graph) -> None:
    assert torch.equal(a.selected_features, b.selected_features)
    assert torch.equal(a.active_features, b.active_features)
    assert torch.equal(a.adjacency, b.adjacency)


@pytest.mark.parametrize("model", ["llama", "clt"])
@pytest.mark.parametrize("max_feature_nodes", [None, 12])
@pytest.mark.parametrize(
    "layout",
    [{"hold_decoder_blocks": False}, {"offload_rows": True},
     {"hold_decoder_blocks": False, "offload_rows": True}],
)  # fmt: skip
def test_the_memory_layouts_give_the_default_graph(
    model: str, max_feature_nodes: int | None, layout: dict, request: pytest.FixtureRequest
) -> None:
    rm: ReplacementModel = request.getfixturevalue(model)
    # batch 2 and re-ranking after every batch: the ranking reads the buffer many times
    options = {"max_feature_nodes": max_feature_nodes, "batch_size": 2, "update_interval": 1}
    default = attribute(PROMPT, rm, **options)  # type: ignore[arg-type]
    _equal_graphs(attribute(PROMPT, rm, **options, **layout), default)  # type: ignore[arg-type]


@pytest.mark.needs_cuda  # on a CPU the host and the device are one memory
def test_the_offloaded_ranking_buffer_lives_on_the_host_and_changes_nothing(
    tmp_path: Path,
) -> None:
    config = save_plt(tmp_path / "tc", jumprelu=True)
    rm = ReplacementModel.from_parts(tiny_model("llama"), load_transcoders(config), device="cuda")
    options = {"max_feature_nodes": 12, "batch_size": 2, "update_interval": 1}
    on_device = attribute(PROMPT, rm, **options)  # type: ignore[arg-type]
    offloaded = attribute(PROMPT, rm, offload_rows=True, **options)  # type: ignore[arg-type]
    assert torch.equal(offloaded.selected_features, on_device.selected_features)
    torch.testing.assert_close(offloaded.adjacency, on_device.adjacency, rtol=0, atol=0)


def test_the_forward_pass_records_no_autograd_graph(gemma_bf16: ReplacementModel) -> None:
    # A recorded graph held every layer's pattern and activations again (67 GB at 8,192 tokens
    # of the Gemma-2-2B shape); the hand-written backward pass reads none of it.
    trace = run_linearised(gemma_bf16, gemma_bf16.tokenize(LONGER))
    assert all(x.grad_fn is None for x in trace.feature_inputs)
    assert trace.final_resid is not None
    assert trace.final_resid.grad_fn is None
    recorded = run_linearised(gemma_bf16, gemma_bf16.tokenize(LONGER), autograd=True)
    assert all(x.grad_fn is not None for x in recorded.feature_inputs)


def test_the_backward_pass_takes_the_patterns_and_folds_them_as_before(
    gemma_bf16: ReplacementModel,
) -> None:
    trace = run_linearised(gemma_bf16, gemma_bf16.tokenize(LONGER))
    patterns = [p.clone() for p in trace.patterns]
    computer = RowComputer(gemma_bf16, trace)
    assert all(p.numel() == 0 for p in trace.patterns)  # held once: by the backward pass
    with pytest.raises(RuntimeError, match="taken by another backward pass"):
        RowComputer(gemma_bf16, trace)
    # The fold as it was written before: scales multiplied in (heads, target, source) order.
    adapter = gemma_bf16.adapter
    assert adapter.attn_out_norm is not None  # Gemma-2 normalises the attention's output
    for layer, block in enumerate(computer.backward.blocks):
        pattern = patterns[layer].float() * trace.norm_scales[(layer, adapter.attn_norm)][:, 0]
        pattern = pattern * trace.norm_scales[(layer, adapter.attn_out_norm)]
        expected = pattern.permute(2, 0, 1).contiguous().to(torch.bfloat16)
        assert torch.equal(block.pattern_t, expected)
