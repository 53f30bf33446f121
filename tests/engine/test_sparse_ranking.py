"""The sparse ranking (sparse_ranking.py) chooses the dense ranking's features: same selected
set, same rows to float tolerance, whatever share of each row it keeps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from inference.engine import Graph, ReplacementModel, attribute, load_transcoders

from .builders import save_clt, save_plt, tiny_model

PROMPT = [5, 9, 7, 12, 30, 8, 14, 21, 6, 11, 4, 17]


def _model(kind: str, folder: Path) -> ReplacementModel:
    if kind == "llama-plt":
        config = save_plt(folder, jumprelu=True)
        return ReplacementModel.from_parts(tiny_model("llama"), load_transcoders(config))
    if kind == "gemma2-plt":
        config = save_plt(
            folder, input_hook="ln2.hook_normalized", output_hook="hook_mlp_out", jumprelu=True
        )
        return ReplacementModel.from_parts(tiny_model("gemma2"), load_transcoders(config))
    config = save_clt(folder, jumprelu=True, skip=True)
    return ReplacementModel.from_parts(tiny_model("llama"), load_transcoders(config))


def _same_graph(sparse: Graph, dense: Graph) -> None:
    assert torch.equal(sparse.selected_features, dense.selected_features)
    assert sparse.target_rows.shape == dense.target_rows.shape
    scale = float(dense.target_rows.abs().max())
    assert torch.allclose(sparse.target_rows, dense.target_rows, atol=1e-6 * scale, rtol=1e-5)


@pytest.mark.parametrize("kind", ["llama-plt", "gemma2-plt", "llama-clt"])
@pytest.mark.parametrize("entries", [1, 10_000])
def test_the_sparse_ranking_selects_the_dense_rankings_features(
    kind: str, entries: int, tmp_path: Path
) -> None:
    rm = _model(kind, tmp_path / "tc")
    everything = attribute(PROMPT, rm, batch_size=8)
    n_active = len(everything.active_features)
    nodes = n_active // 3
    assert nodes >= 24
    # re-ranking after every batch of 3: many rankings, each with a cut to get right
    settings: dict[str, Any] = {"max_feature_nodes": nodes, "batch_size": 3, "update_interval": 1}
    dense = attribute(PROMPT, rm, **settings)
    sparse = attribute(PROMPT, rm, ranking_entries=entries, **settings)
    _same_graph(sparse, dense)
    # the choice is not the first `nodes` features nor every feature: the ranking decided it
    assert not torch.equal(dense.selected_features, torch.arange(nodes))


def test_rows_keeping_few_entries_still_rank_exactly_through_column_passes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from inference.engine import sparse_ranking

    rm = _model("llama-plt", tmp_path / "tc")
    passes: list[int] = []
    original = sparse_ranking.SparseRows.assemble

    def counted(
        self: sparse_ranking.SparseRows, visited: torch.Tensor, block_rows: int
    ) -> torch.Tensor:
        passes.append(self.column_passes)
        return original(self, visited, block_rows)

    monkeypatch.setattr(sparse_ranking.SparseRows, "assemble", counted)
    settings: dict[str, Any] = {"max_feature_nodes": 30, "batch_size": 3, "update_interval": 1}
    attribute(PROMPT, rm, ranking_entries=1, **settings)
    attribute(PROMPT, rm, ranking_entries=10_000, **settings)
    one, whole = passes
    # with whole rows every bound is exact: the passes are the visited features' columns
    # (those selected once feature rows exist); with one entry a row, near-misses cost more
    assert whole <= 30
    assert one > whole


def test_a_bad_ranking_entries_is_refused(tmp_path: Path) -> None:
    rm = _model("llama-plt", tmp_path / "tc")
    with pytest.raises(ValueError, match="ranking_entries"):
        attribute(PROMPT, rm, max_feature_nodes=4, ranking_entries=0)
