"""The memory planner (memory_plan.py) and the chunked influence ranking it accounts for."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from inference.engine import Graph, ReplacementModel, attribute, attribution
from inference.engine.memory_plan import (
    LAYOUTS,
    MMAP_THRESHOLD_MAX,
    RANKING_ENTRIES,
    ActiveFeatures,
    Estimate,
    Layout,
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
    # The trace's activations grow with the prompt, and nothing grows with its square: the
    # attention patterns go to the backward pass (its term), and no autograd graph is kept.
    ratio = longer.n_pos / active.n_pos
    assert longer.forward_bytes == pytest.approx(active.forward_bytes * ratio, rel=0.02)


def test_the_fold_is_one_layers_pattern_in_float32_beside_the_held_ones() -> None:
    fold = estimate(SHAPES, ACTIVE, batch_size=32, max_feature_nodes=1000, n_logits=10)
    assert fold.terms["fold"] == SHAPES.n_heads * ACTIVE.n_pos**2 * 4
    # It is alive before the decoder blocks are built: whichever is larger counts.
    big_heads = dataclasses.replace(SHAPES, n_heads=4096)
    wide = estimate(big_heads, ACTIVE, batch_size=32, max_feature_nodes=1000, n_logits=10)
    alive = wide.terms["forward"] + wide.terms["backward"]
    assert wide.peak >= alive + wide.terms["fold"] > alive + wide.terms["build"]


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
HELD = LAYOUTS[:1]  # the layout of a plain `attribute` call
GPU = dataclasses.replace(SHAPES, on_host=False)


def _peak(
    shapes: Shapes = SHAPES,
    active: ActiveFeatures = ACTIVE,
    batch_size: int = 32,
    max_feature_nodes: int | None = 1000,
    layout: Layout = LAYOUTS[0],
) -> int:
    return estimate(
        shapes,
        active,
        batch_size=batch_size,
        max_feature_nodes=max_feature_nodes,
        n_logits=10,
        layout=layout,
    ).peak


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shapes", [SHAPES, GPU])
def test_the_estimate_grows_with_the_prompt_length(shapes: Shapes, layout: Layout) -> None:
    longer = dataclasses.replace(ACTIVE, n_pos=128, per_layer=(4000,) * 4)
    assert _peak(shapes, active=longer, layout=layout) > _peak(shapes, layout=layout)
    # positions alone (same features, same forward) still cost: errors, gradients, columns
    same_features = dataclasses.replace(ACTIVE, n_pos=128)
    assert _peak(shapes, active=same_features, layout=layout) > _peak(shapes, layout=layout)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_the_estimate_grows_with_batch_size_nodes_features_and_dtype(layout: Layout) -> None:
    def peak(**changes: object) -> int:
        return _peak(**{"layout": layout, **changes})  # type: ignore[arg-type]

    # (above the batch size where the batch outweighs the ranking's chunk: about 60 rows here)
    assert peak(batch_size=256) > peak(batch_size=128)
    assert peak(max_feature_nodes=2000) > peak(max_feature_nodes=1000)
    # not past the selection's end: selecting all but one feature assembles the graph through
    # two more copies, keeping all writes rows in place (docs/engine.md, "Memory")
    assert peak(max_feature_nodes=7999) > peak(max_feature_nodes=None) > peak()
    more = dataclasses.replace(ACTIVE, per_layer=(3000,) * 4, densest=(60,) * 4)
    assert peak(active=more) > peak()
    bf16, f32 = dataclasses.replace(SHAPES, dtype_bytes=2), SHAPES
    assert peak(shapes=f32) > peak(shapes=bf16)


def test_the_planner_picks_the_largest_batch_that_fits() -> None:
    def total(batch: int) -> int:
        return estimate(
            SHAPES, ACTIVE, batch_size=batch, max_feature_nodes=1000, n_logits=10
        ).device_total

    # (below about 60 rows this shape's peak is the ranking's chunk, whatever the batch size)
    assert total(100) > total(99)
    budget = total(100)
    options = {"max_feature_nodes": 1000, "n_logits": 10, "layouts": HELD}
    chosen = plan(SHAPES, ACTIVE, budget_bytes=budget, **options)  # type: ignore[arg-type]
    assert chosen.batch_size == 100
    assert plan(SHAPES, ACTIVE, budget_bytes=10**12, **options).batch_size == 256  # type: ignore[arg-type]
    kept = plan(SHAPES, ACTIVE, budget_bytes=budget, batch_size=20, **options)  # type: ignore[arg-type]
    assert kept.batch_size == 20


def _dense_plan(budget: int, batch_size: int | None = None) -> Estimate:
    """The plan for ACTIVE at 1,000 nodes with the blocks held and the dense ranking only."""
    return plan(
        SHAPES, ACTIVE, budget_bytes=budget, max_feature_nodes=1000, n_logits=10,
        batch_size=batch_size, layouts=HELD, sparse_ranking=False,
    )  # fmt: skip


def test_the_refusal_names_the_knob_to_lower() -> None:
    # the dense ranking's refusal (the sparse ranking's: test_the_planner_ranks_sparsely_...)
    at_one = estimate(SHAPES, ACTIVE, batch_size=1, max_feature_nodes=500, n_logits=10)
    budget = at_one.device_total
    with pytest.raises(MemoryBudgetExceeded) as refused:
        _dense_plan(budget)
    message = str(refused.value)
    assert "max_feature_nodes ≤ 500" in message
    assert f"this worker has {readable_bytes(budget)}" in message
    budget = estimate(
        SHAPES, ACTIVE, batch_size=160, max_feature_nodes=1000, n_logits=10
    ).device_total
    with pytest.raises(MemoryBudgetExceeded, match=r"batch size ≤ (\d+)") as refused:
        _dense_plan(budget, batch_size=256)
    named = int(str(refused.value).rsplit("≤ ", 1)[1])
    assert _dense_plan(budget, batch_size=named).batch_size == named
    with pytest.raises(MemoryBudgetExceeded):
        _dense_plan(budget, batch_size=named + 1)
    with pytest.raises(MemoryBudgetExceeded, match="use a shorter prompt"):
        _dense_plan(SHAPES.weight_bytes)


def test_on_a_gpu_the_host_side_adjacency_is_not_device_memory() -> None:
    kept_all = estimate(GPU, ACTIVE, batch_size=32, max_feature_nodes=None, n_logits=10)
    on_cpu = estimate(SHAPES, ACTIVE, batch_size=32, max_feature_nodes=None, n_logits=10)
    adjacency = kept_all.terms["rows"]
    assert adjacency == on_cpu.terms["rows"] > 0
    assert kept_all.peak < on_cpu.peak - adjacency // 2  # and the CPU's heap
    assert kept_all.host_peak == adjacency  # filled in place on the host
    assert on_cpu.host_peak == 0  # a CPU run's host is its device: all in ``peak``
    selecting = estimate(GPU, ACTIVE, batch_size=32, max_feature_nodes=1000, n_logits=10)
    assert selecting.host_peak == selecting.terms["assemble"] > 0
    assert selecting.peak > selecting.terms["rows"] > 0  # the ranking buffer is on the device


def _terms(max_feature_nodes: int | None) -> dict[str, int]:
    return estimate(
        SHAPES, ACTIVE, batch_size=32, max_feature_nodes=max_feature_nodes, n_logits=10
    ).terms


def test_the_estimate_grows_with_the_attention_heads() -> None:
    # the backward pass keeps every layer's pattern: L x heads x n x n
    assert _peak(shapes=dataclasses.replace(SHAPES, n_heads=16)) > _peak()


def test_the_heap_keeps_a_batchs_blocks_only_below_the_builds_largest_freed_block() -> None:
    def terms(batch: int, active: ActiveFeatures = ACTIVE) -> dict[str, int]:
        return estimate(SHAPES, active, batch_size=batch, max_feature_nodes=1000, n_logits=10).terms

    decoder_copy = 2000 * 256 * 4  # a layer's decoder rows in float32: malloc's new threshold
    row = 8 * (2000 * 4 + 5 * 64 + 10) * 4
    gradient = 8 * 64 * 256 * 4
    assert max(gradient, row) < decoder_copy
    assert terms(8)["heap"] == gradient + row
    assert decoder_copy < 32 * 64 * 256 * 4  # at batch 32 the gradient is mapped and unmapped
    assert terms(32)["heap"] == 4 * row
    # the build's own blocks stay when at most 32 MB, whatever the batch
    assert terms(8)["heap_build"] == terms(32)["heap_build"] == 2 * decoder_copy + 4 * 64 * 256 * 4
    huge = dataclasses.replace(ACTIVE, per_layer=(40000,) * 4)  # 41 MB decoder copies
    assert MMAP_THRESHOLD_MAX < 40000 * 256 * 4
    assert terms(8, huge)["heap_build"] == 4 * 64 * 256 * 4
    gpu = estimate(GPU, ACTIVE, batch_size=8, max_feature_nodes=1000, n_logits=10).terms
    assert gpu["heap"] == gpu["heap_build"] == 0


PER_BATCH, OFFLOADED = Layout(hold_decoder_blocks=False), Layout(offload_rows=True)
# a long prompt's proportions: the held decoder blocks (80 positions x 200 features a layer,
# d 256) outweigh one batch's slice of them
LONG = ActiveFeatures(n_pos=80, per_layer=(16000,) * 4, densest=(200,) * 4, forward_bytes=10**7)


def _estimate(shapes: Shapes, layout: Layout, nodes: int | None = 100) -> Estimate:
    # (few nodes: a batch, not the ranking's chunk of the rows, sets the peak)
    return estimate(shapes, LONG, batch_size=8, max_feature_nodes=nodes, n_logits=10, layout=layout)


def test_blocks_built_per_batch_trade_the_held_blocks_for_one_slice() -> None:
    held, per_batch = _estimate(GPU, LAYOUTS[0]), _estimate(GPU, PER_BATCH)
    blocks = 4 * 80 * 200 * 256 * 4  # every layer's (n, w, d) float32 block
    assert held.terms["sources"] - per_batch.terms["sources"] == blocks
    one_slice = 16000 * 256 * 4 + 80 * 200 * 256 * 4  # a layer's rows beside its padded slice
    assert (held.terms["decoder"], per_batch.terms["decoder"]) == (0, one_slice)
    assert held.peak - per_batch.peak >= blocks - one_slice > 0


def test_an_offloaded_buffer_is_host_memory_on_a_gpu_and_nothing_moves_on_a_cpu() -> None:
    on_device, offloaded = _estimate(GPU, LAYOUTS[0]), _estimate(GPU, OFFLOADED)
    rows = offloaded.terms["rows"]
    assert rows == (100 + 10) * (16000 * 4 + 5 * 80 + 10) * 4
    assert on_device.peak - offloaded.peak == rows
    assert offloaded.host_peak == rows + offloaded.terms["assemble"]
    assert _estimate(SHAPES, OFFLOADED).peak == _estimate(SHAPES, LAYOUTS[0]).peak


def _plan(shapes: Shapes, budget: int, **options: object) -> Estimate:
    return plan(
        shapes, LONG, budget_bytes=budget, max_feature_nodes=1000, n_logits=10, batch_size=8,
        **options,  # type: ignore[arg-type]
    )  # fmt: skip


def test_the_planner_holds_the_blocks_then_builds_them_per_batch_then_offloads() -> None:
    # 1,000 nodes: here the ranking buffer is the largest term, the held blocks the next
    needs = {layout: _estimate(GPU, layout, 1000).device_total for layout in LAYOUTS}
    assert needs[LAYOUTS[0]] > needs[PER_BATCH] > needs[OFFLOADED] > needs[LAYOUTS[3]]
    for layout in LAYOUTS:  # each chosen at exactly its own need, the preferred one first
        assert _plan(GPU, needs[layout]).layout == layout
    assert _plan(GPU, needs[LAYOUTS[0]] * 2).layout == LAYOUTS[0]
    # the offloaded buffer has to fit the host
    host = _estimate(GPU, OFFLOADED, 1000).host_peak
    assert _plan(GPU, needs[OFFLOADED], host_budget_bytes=host).layout == OFFLOADED
    with pytest.raises(MemoryBudgetExceeded, match="of host memory"):
        _plan(GPU, needs[OFFLOADED], host_budget_bytes=host - 1, sparse_ranking=False)


def test_a_cpu_plan_builds_blocks_per_batch_but_never_offloads() -> None:
    per_batch = _estimate(SHAPES, PER_BATCH, 1000).device_total
    assert _plan(SHAPES, per_batch).layout == PER_BATCH
    with pytest.raises(MemoryBudgetExceeded, match=r"max_feature_nodes ≤ \d+"):
        _plan(SHAPES, per_batch - 1, sparse_ranking=False)


SPARSE = Layout(ranking_entries=64)


def test_the_sparse_ranking_keeps_its_entries_and_the_fixed_columns_instead_of_the_buffer() -> None:
    dense, sparse = _estimate(GPU, LAYOUTS[0], 1000), _estimate(GPU, SPARSE, 1000)
    keep, k, n_active, fixed = 1000, 10, 64_000, 5 * 80
    every = keep + k
    assert dense.terms["rows"] == every * (n_active + fixed + k) * 4
    # the logit rows whole, the kept magnitudes and their int32 columns, each row's error and
    # token columns, its entries at the visited columns and its L1 sum, the slots' sums (tau)
    # and the rows' encoder directions
    state = k * (n_active + fixed) + keep * 2 * 64 + every * (fixed + keep + 1) + keep
    assert sparse.terms["rows"] == state * 4 + keep * 256 * 4
    assert sparse.terms["rows"] < dense.terms["rows"] / 10
    assert sparse.peak < dense.peak
    # a batch's rows are kept after their backward pass: their magnitudes and top entries
    assert sparse.terms["rank_rows"] > sparse.terms["batch"] - sparse.terms["rank_rows"] > 0
    # without selection there is no ranking: the layout changes nothing
    assert _estimate(GPU, SPARSE, None).terms == _estimate(GPU, LAYOUTS[0], None).terms


@pytest.mark.parametrize("shapes", [SHAPES, GPU])
def test_the_sparse_estimate_grows_with_entries_nodes_batch_and_length(shapes: Shapes) -> None:
    def need(
        entries: int = 64, nodes: int = 1000, batch: int = 8, active: ActiveFeatures = LONG
    ) -> int:
        return estimate(
            shapes, active, batch_size=batch, max_feature_nodes=nodes, n_logits=10,
            layout=Layout(ranking_entries=entries),
        ).peak  # fmt: skip

    assert need(entries=4096) > need(entries=512) > need()
    assert need(nodes=2000) > need()
    assert need(batch=64) > need()
    longer = dataclasses.replace(LONG, n_pos=160, per_layer=(32000,) * 4)
    assert need(active=longer) > need()
    # more entries than features: as many as there are
    assert need(entries=10**9) == need(entries=64_000)


def test_the_planner_ranks_sparsely_only_when_no_dense_layout_fits() -> None:
    smallest_dense = min(_estimate(GPU, lay, 1000).device_total for lay in LAYOUTS)

    def sparse_need(entries: int, hold: bool = True) -> int:
        return _estimate(GPU, Layout(hold, False, entries), 1000).device_total

    preferred = min(RANKING_ENTRIES, LONG.total)
    assert sparse_need(preferred) < smallest_dense
    # a budget any dense layout fits keeps the dense ranking
    assert _plan(GPU, smallest_dense).layout.ranking_entries is None
    chosen = _plan(GPU, smallest_dense - 1)
    assert chosen.layout.ranking_entries == preferred
    assert chosen.device_total <= smallest_dense - 1
    # too little for that many entries a row: the most that fit
    budget = sparse_need(700, hold=False)
    assert sparse_need(preferred, hold=False) > budget
    fewer = _plan(GPU, budget)
    assert fewer.layout == Layout(False, False, 700)
    with pytest.raises(MemoryBudgetExceeded):
        _plan(GPU, budget, sparse_ranking=False)
    # not even one entry a row: refused, naming the nodes the sparse ranking would fit
    one = sparse_need(1, hold=False)
    with pytest.raises(MemoryBudgetExceeded, match=r"set max_feature_nodes ≤ (\d+)") as refused:
        _plan(GPU, one - 1)
    nodes = int(str(refused.value).rsplit("≤ ", 1)[1])
    assert plan(GPU, LONG, budget_bytes=one - 1, max_feature_nodes=nodes, n_logits=10,
                batch_size=8) is not None  # fmt: skip


def test_the_sparse_ranking_is_not_planned_when_every_feature_is_kept() -> None:
    every = dataclasses.replace(LONG, per_layer=(50,) * 4)  # 200 features, 1,000 nodes wanted
    need = min(
        estimate(GPU, every, batch_size=8, max_feature_nodes=1000, n_logits=10,
                 layout=lay).device_total
        for lay in LAYOUTS
    )  # fmt: skip
    with pytest.raises(MemoryBudgetExceeded):
        plan(GPU, every, budget_bytes=need - 1, max_feature_nodes=1000, n_logits=10, batch_size=8)
