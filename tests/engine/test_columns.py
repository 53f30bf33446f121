"""The column pass (columns.py) is the transpose of the rows' backward pass: a source feature's
column, pushed forward through the frozen linear model, equals the entries every row has at that
feature's column, on every architecture and transcoder kind the engine serves."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from inference.engine import ReplacementModel, load_transcoders
from inference.engine.columns import ColumnPass, Targets
from inference.engine.replacement import run_linearised
from inference.engine.rows import RowComputer, by_layer

from .builders import save_clt, save_plt, tiny_model

PROMPT = [5, 9, 7, 12, 30, 8, 14, 21, 6]

CASES = {
    # family, transcoders, input hook, output hook, skip
    "llama-plt": ("llama", "plt", "mlp.hook_in", "mlp.hook_out", False),
    "llama-plt-skip-resid-mid": ("llama", "plt", "hook_resid_mid", "mlp.hook_out", True),
    "llama-clt-skip": ("llama", "clt", "hook_resid_mid", "hook_mlp_out", True),
    "gemma2-normalized-mlp-out": ("gemma2", "plt", "ln2.hook_normalized", "hook_mlp_out", False),
    "gemma2-before-post-norm": ("gemma2", "plt", "mlp.hook_in", "mlp.hook_out", True),
    "gemma3-clt": ("gemma3", "clt", "hook_resid_mid", "hook_mlp_out", False),
    "gpt2-layernorm": ("gpt2", "plt", "mlp.hook_in", "mlp.hook_out", True),
    "qwen3": ("qwen3", "plt", "ln2.hook_normalized", "mlp.hook_out", False),
}


def _model(case: str, folder: Path) -> ReplacementModel:
    family, kind, input_hook, output_hook, skip = CASES[case]
    if kind == "plt":
        config = save_plt(
            folder, input_hook=input_hook, output_hook=output_hook, jumprelu=True, skip=skip
        )
    else:
        config = save_clt(
            folder, input_hook=input_hook, output_hook=output_hook, jumprelu=True, skip=skip
        )
    return ReplacementModel.from_parts(tiny_model(family), load_transcoders(config))


@pytest.mark.parametrize("case", sorted(CASES))
def test_columns_equal_the_rows_entries(case: str, tmp_path: Path) -> None:
    rm = _model(case, tmp_path / "tc")
    computer = RowComputer(rm, run_linearised(rm, rm.tokenize(PROMPT)))
    n_active = computer.n_active
    assert n_active > 20
    layers, positions = computer.active_features[:, 0], computer.active_features[:, 1]
    # every feature's row and two logit-like rows at the last position
    target_layers = torch.cat([layers, torch.full((2,), rm.n_layers)])
    target_positions = torch.cat([positions, torch.full((2,), computer.n_pos - 1)])
    vectors = torch.cat(
        [
            computer.encoder_rows(torch.arange(n_active)),
            torch.randn(2, rm.d_model, generator=torch.Generator().manual_seed(1)),
        ]
    )
    rows = torch.zeros(len(target_layers), n_active)
    order = torch.randperm(len(target_layers), generator=torch.Generator().manual_seed(0))
    for c in range(0, len(order), 9):
        idx = by_layer(order[c : c + 9], target_layers)
        rows[idx] = computer.rows(target_layers[idx], target_positions[idx], vectors[idx])[
            :, :n_active
        ]
    assert (rows != 0).float().mean() > 0.1  # the check has entries to compare

    passes = ColumnPass(computer)
    targets = Targets(target_layers, target_positions, vectors)
    columns = torch.zeros_like(rows)
    sources = torch.randperm(n_active, generator=torch.Generator().manual_seed(2))
    for c in range(0, n_active, 11):  # batches mixing layers and positions
        idx = sources[c : c + 11]
        columns[:, idx] = passes.columns(idx, targets)
    scale = rows.abs().max()
    assert torch.allclose(columns, rows, atol=2e-6 * float(scale), rtol=1e-4)
    # causality: a source has no effect at or before its own layer, nor at earlier positions
    later = (target_layers[:, None] > layers[None]) & (target_positions[:, None] >= positions[None])
    assert not columns[~later].any()
