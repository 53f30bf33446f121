"""The memory planner (memory_plan.py) and the chunked influence ranking it accounts for."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from inference.engine import Graph, ReplacementModel, attribute, attribution
from inference.engine.memory_plan import (
    MMAP_THRESHOLD_MAX,
    ActiveFeatures,
    MemoryBudgetExceeded,
    Shapes,
    estimate,
    measure,
    plan,
    readable_bytes,
)

from .conftest import PROMPT


def whole_matrix_influences(
    edge_matrix: torch.Tensor, logit_weights: torch.Tensor, row_to_node: torch.Tensor
) -> torch.Tensor:
    """The ranking as it was before the chunked version: the series over a full |A| copy."""
    normalized = edge_matrix.abs()
    normalized /= normalized.sum(dim=1, keepdim=True).clamp(min=1e-8)
    influences = torch.zeros(edge_matrix.shape[1])
    prod = torch.zeros(edge_matrix.shape[1])
    prod[-len(logit_weights) :] = logit_weights
    for _ in range(128):
        prod = prod[row_to_node] @ normalized
        if not prod.any():
            return influences
        influences += prod
    raise RuntimeError("no convergence")


def _ranking_case(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rows of 3 logits and 40 of 200 features, each feature row reading only earlier features
    (a DAG, as layers make it), buffer rows in visit order like `_feature_rows`."""
    g = torch.Generator().manual_seed(seed)
    n_features, n_other, n_logits, n_rows = 200, 30, 3, 40
    n_cols = n_features + n_other + n_logits
    visited = torch.randperm(n_features, generator=g)[:n_rows]
    buffer = torch.zeros(n_logits + n_rows, n_cols)
    buffer[:n_logits, : n_features + n_other] = torch.randn(
        n_logits, n_features + n_other, generator=g
    )
    for r, f in enumerate(visited.tolist()):
        buffer[n_logits + r, :f] = torch.randn(f, generator=g)
        buffer[n_logits + r, n_features : n_features + n_other] = torch.randn(n_other, generator=g)
    row_to_node = torch.cat([torch.arange(n_logits) + n_features + n_other, visited])
    return buffer, torch.tensor([0.5, 0.3, 0.1]), row_to_node


@pytest.mark.parametrize("chunk_bytes", [1, 4 * 233 * 7, 2**28])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_chunked_ranking_equals_the_whole_matrix_series(seed: int, chunk_bytes: int) -> None:
    buffer, weights, row_to_node = _ranking_case(seed)
    expected = whole_matrix_influences(buffer, weights, row_to_node)
    got = attribution.partial_influences(buffer, weights, row_to_node, chunk_bytes=chunk_bytes)
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-9)
    assert torch.equal(torch.argsort(got[:200], descending=True)[:40],
                       torch.argsort(expected[:200], descending=True)[:40])  # fmt: skip


def test_selection_is_unchanged_by_the_chunked_ranking(
    llama: ReplacementModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    # update_interval 1 with batch 2: the ranking is redone after every batch of 2 features
    options = {"max_feature_nodes": 12, "batch_size": 2, "update_interval": 1}
    new = attribute(PROMPT, llama, **options)  # type: ignore[arg-type]
    monkeypatch.setattr(
        attribution, "partial_influences", lambda m, w, r, **_: whole_matrix_influences(m, w, r)
    )
    old = attribute(PROMPT, llama, **options)  # type: ignore[arg-type]
    assert torch.equal(new.selected_features, old.selected_features)
    torch.testing.assert_close(new.adjacency, old.adjacency, rtol=1e-6, atol=1e-7)


def test_measure_counts_the_features_attribute_finds(
    llama: ReplacementModel, llama_graph: Graph
) -> None:
    active = measure(llama, llama.tokenize(PROMPT))
    per_layer = torch.bincount(llama_graph.active_features[:, 0], minlength=llama.n_layers)
    assert active.per_layer == tuple(per_layer.tolist())
    assert active.n_pos == len(llama_graph.input_tokens)
    by_position = torch.zeros(llama.n_layers, active.n_pos, dtype=torch.long)
    by_position.index_put_(
        (llama_graph.active_features[:, 0], llama_graph.active_features[:, 1]),
        torch.ones(len(llama_graph.active_features), dtype=torch.long),
        accumulate=True,
    )
    assert active.densest == tuple(by_position.max(1).values.tolist())
    longer = measure(llama, llama.tokenize(PROMPT * 3))
    assert longer.forward_bytes > active.forward_bytes > 0


SHAPES = Shapes(
    n_layers=4,
    d_model=256,
    n_heads=8,
    attn_width=256,
    value_width=128,
    out_layers=(1, 1, 1, 1),
    dtype_bytes=4,
    weight_bytes=10**8,
)
ACTIVE = ActiveFeatures(n_pos=64, per_layer=(2000,) * 4, densest=(40,) * 4, forward_bytes=10**7)


def _peak(
    shapes: Shapes = SHAPES,
    active: ActiveFeatures = ACTIVE,
    batch_size: int = 32,
    max_feature_nodes: int | None = 1000,
) -> int:
    return estimate(
        shapes, active, batch_size=batch_size, max_feature_nodes=max_feature_nodes, n_logits=10
    ).peak


def test_the_estimate_grows_with_the_prompt_length() -> None:
    longer = dataclasses.replace(ACTIVE, n_pos=128, per_layer=(4000,) * 4)
    assert _peak(active=longer) > _peak()
    # positions alone (same features, same forward) still cost: errors, gradients, columns
    assert _peak(active=dataclasses.replace(ACTIVE, n_pos=128)) > _peak()


def test_the_estimate_grows_with_batch_size_nodes_features_and_dtype() -> None:
    # (above the batch size where the batch outweighs the ranking's chunk: about 60 rows here)
    assert _peak(batch_size=256) > _peak(batch_size=128)
    assert _peak(max_feature_nodes=2000) > _peak(max_feature_nodes=1000)
    # not past the selection's end: selecting all but one feature assembles the graph through
    # two more copies, keeping all writes rows in place (docs/engine.md, "Memory")
    assert _peak(max_feature_nodes=7999) > _peak(max_feature_nodes=None) > _peak()
    more = dataclasses.replace(ACTIVE, per_layer=(3000,) * 4, densest=(60,) * 4)
    assert _peak(active=more) > _peak()
    bf16, f32 = dataclasses.replace(SHAPES, dtype_bytes=2), SHAPES
    assert _peak(shapes=f32) > _peak(shapes=bf16)


def test_the_planner_picks_the_largest_batch_that_fits() -> None:
    def total(batch: int) -> int:
        return estimate(
            SHAPES, ACTIVE, batch_size=batch, max_feature_nodes=1000, n_logits=10
        ).device_total

    # (below about 60 rows this shape's peak is the ranking's chunk, whatever the batch size)
    assert total(100) > total(99)
    budget = total(100)
    chosen = plan(SHAPES, ACTIVE, budget_bytes=budget, max_feature_nodes=1000, n_logits=10)
    assert chosen.batch_size == 100
    assert (
        plan(SHAPES, ACTIVE, budget_bytes=10**12, max_feature_nodes=1000, n_logits=10).batch_size
        == 256
    )
    kept = plan(
        SHAPES, ACTIVE, budget_bytes=budget, max_feature_nodes=1000, n_logits=10, batch_size=20
    )
    assert kept.batch_size == 20


def test_the_refusal_names_the_knob_to_lower() -> None:
    at_one = estimate(SHAPES, ACTIVE, batch_size=1, max_feature_nodes=500, n_logits=10)
    budget = at_one.device_total
    with pytest.raises(MemoryBudgetExceeded) as refused:
        plan(SHAPES, ACTIVE, budget_bytes=budget, max_feature_nodes=1000, n_logits=10)
    message = str(refused.value)
    assert "max_feature_nodes ≤ 500" in message
    assert f"this worker has {readable_bytes(budget)}" in message
    budget = estimate(
        SHAPES, ACTIVE, batch_size=160, max_feature_nodes=1000, n_logits=10
    ).device_total
    with pytest.raises(MemoryBudgetExceeded, match=r"batch size ≤ (\d+)") as refused:
        plan(
            SHAPES, ACTIVE, budget_bytes=budget, max_feature_nodes=1000, n_logits=10, batch_size=256
        )
    named = int(str(refused.value).rsplit("≤ ", 1)[1])
    assert plan(SHAPES, ACTIVE, budget_bytes=budget, max_feature_nodes=1000, n_logits=10,
                batch_size=named).batch_size == named  # fmt: skip
    with pytest.raises(MemoryBudgetExceeded):
        plan(SHAPES, ACTIVE, budget_bytes=budget, max_feature_nodes=1000, n_logits=10,
             batch_size=named + 1)  # fmt: skip
    with pytest.raises(MemoryBudgetExceeded, match="use a shorter prompt"):
        plan(SHAPES, ACTIVE, budget_bytes=SHAPES.weight_bytes, max_feature_nodes=1000, n_logits=10)


def test_on_a_gpu_the_host_side_adjacency_is_not_device_memory() -> None:
    gpu = dataclasses.replace(SHAPES, on_host=False)
    kept_all = estimate(gpu, ACTIVE, batch_size=32, max_feature_nodes=None, n_logits=10)
    assert (kept_all.terms["rows"], kept_all.terms["assemble"]) == (0, 0)
    selecting = estimate(gpu, ACTIVE, batch_size=32, max_feature_nodes=1000, n_logits=10)
    assert selecting.terms["rows"] == _terms(max_feature_nodes=1000)["rows"] > 0
    assert selecting.terms["assemble"] == 0
    assert kept_all.peak < _peak(max_feature_nodes=None)


def _terms(max_feature_nodes: int | None) -> dict[str, int]:
    return estimate(
        SHAPES, ACTIVE, batch_size=32, max_feature_nodes=max_feature_nodes, n_logits=10
    ).terms


def test_the_estimate_grows_with_the_attention_heads() -> None:
    # the backward pass keeps every layer's pattern: L x heads x n x n
    assert _peak(shapes=dataclasses.replace(SHAPES, n_heads=16)) > _peak()


def test_the_heap_keeps_freed_blocks_up_to_the_mmap_threshold_only() -> None:
    small = _terms(max_feature_nodes=1000)
    assert small["heap"] > 0  # every block of this batch is below 32 MB: all of it stays
    # 64 rows x 1,024 positions x d 256 x 4 bytes = 64 MB per gradient: unmapped when freed
    long = dataclasses.replace(ACTIVE, n_pos=1024)
    big = estimate(SHAPES, long, batch_size=64, max_feature_nodes=1000, n_logits=10).terms
    gradient = 64 * 1024 * 256 * 4
    assert gradient > MMAP_THRESHOLD_MAX
    assert 0 < big["heap"] < gradient  # the row and the build's copies only
    gpu = dataclasses.replace(SHAPES, on_host=False)
    assert (
        estimate(gpu, ACTIVE, batch_size=32, max_feature_nodes=1000, n_logits=10).terms["heap"] == 0
    )
