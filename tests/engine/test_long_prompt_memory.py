"""The long-prompt memory choices (issue #19) give the same graph: decoder blocks built per batch
instead of held (rows.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from inference.engine import ReplacementModel, attribute, load_transcoders
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


def test_a_graph_with_decoder_blocks_built_per_batch_is_the_default_graph(
    clt: ReplacementModel,
) -> None:
    options = {"max_feature_nodes": 12, "batch_size": 2, "update_interval": 1}
    default = attribute(PROMPT, clt, **options)  # type: ignore[arg-type]
    per_batch = attribute(PROMPT, clt, hold_decoder_blocks=False, **options)  # type: ignore[arg-type]
    assert torch.equal(per_batch.selected_features, default.selected_features)
    assert torch.equal(per_batch.adjacency, default.adjacency)


def test_a_cross_layer_decoder_reads_one_output_layer_alone(tmp_path: Path) -> None:
    tc = load_transcoders(save_clt(tmp_path / "clt"))
    ids = torch.tensor([3, 0, 7])
    every = tc.decoders[1].rows(ids, torch.device("cpu"), torch.float32)  # (3, n_out, d)
    assert every.shape[1] > 1
    for out in range(every.shape[1]):
        one = tc.decoders[1].rows(ids, torch.device("cpu"), torch.float32, out_layer=out)
        assert torch.equal(one, every[:, out])
