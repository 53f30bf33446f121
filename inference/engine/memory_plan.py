"""The memory planner: the peak memory of an `attribute()` run, predicted before its backward passes.

`measure(model, tokens)` is the cheap part: one linearised forward pass and the encoders (no
decoder row is read, no backward pass runs) give the active features per layer and their densest
position, and the bytes that forward pass keeps (the trace's tensors, counted once per storage,
the model's own weights and the attention patterns, which the backward pass takes, left out;
it records no autograd graph). `estimate(...)` is then
arithmetic on those counts, the model and transcoder shapes and the settings. The run's peak is
the largest of three moments, each the sum of what is alive then (``b`` = bytes per element of
the model's dtype, f32 = 4; ``n`` positions, ``L`` layers, ``d`` d_model, ``A`` active features,
``A_l`` and ``w_l`` layer l's active features and its densest position's count, ``o_l`` the
output layers of layer l's decoder (1, or L - l for a cross-layer set), ``K`` the feature rows
kept (``max_feature_nodes``, or A), ``k`` target logits, ``N = A + L n + n`` source columns,
``B`` the batch size):

- ``forward``: the measured bytes the linearised forward's trace keeps.
- ``sources`` (kept from `RowComputer` on): the decoder blocks, padded per position,
  ``sum_l o_l n w_l d b``, when held (`Layout`); the error vectors and token embeddings,
  ``(L + 1) n d f32``.
- ``fold`` (while the backward pass is built, before ``build``): one layer's attention pattern
  in float32 while the norm scales are folded into it, ``H n² f32``; the trace's copy of each
  pattern is released as it is folded, so the patterns are counted once (``backward``).
- ``build`` (while `RowComputer` is built): one layer's decoder rows read in float32 and scaled
  (two copies) and its reconstruction, ``max_l 2 A_l o_l d f32 + L n d f32``.
- ``rows``: the row buffer. With every feature kept, the graph's rows (graph.py
  ``target_rows``), ``(A + k) (N + k) f32`` on the CPU; when selecting, ``(K + k) (N + k)
  f32`` on the model's device, or on the host when offloaded (`Layout`), which the ranking reads in row chunks (`partial_influences`) instead
  of through a full copy.
- ``backward`` (kept from `RowComputer` on, backward.py): every layer's frozen attention pattern
  with the norm scales folded in, ``L H n² b`` (``H`` heads), and the value and output
  projection weights with the norm gains folded in, ``L (d Q + V d) b`` (``Q`` = H x head_dim
  and ``V`` = key/value heads x head_dim, the projections' widths).
- ``batch`` (one backward batch, backward.py): the gradient at the residual stream and the
  attention's result, ``2 B n d b`` (``BACKWARD_WORKING_SET``); the heads' gradients and
  their reordered copy, ``2 B n Q b``; one key/value group's value gradients, ``B n Q/H b``
  (one head's width: a group's heads share their values, backward.py's ``g_values``); on a
  bfloat16 model, float32 copies of one output hook's gradient and the embeddings',
  ``2 B n d f32``; the batch's row, ``B (N + k) f32``.
- ``decoder`` (decoder blocks built per batch only, rows.py): one (source, output) layer's
  slice, built inside the batch: the layer's rows read in float32 (and their cast on a bf16
  model), then the cast beside the padded slice, ``max_l max(A_l d (f32 [+ b]), A_l d b +
  n w_l d b)``.
- with the sparse ranking (`Layout` ``ranking_entries``, sparse_ranking.py), ``rows`` is its
  kept state instead of the buffer, ``ranking`` a re-ranking's bounds and column passes, and
  ``rank_rows`` what a batch's rows add as they are kept (`_sparse_ranking` has the sizes).
- ``heap`` (on the host only): what the C allocator keeps of freed memory. glibc's malloc
  raises its mmap threshold to the size of the largest mapped block freed (up to 32 MB,
  ``MMAP_THRESHOLD_MAX``), so later blocks up to that size come from the heap, and a freed
  block stays mapped instead of going back to the system. The build's freed blocks (a
  layer's two decoder copies, the reconstruction) stay, those of at most 32 MB, and set the
  threshold the batches meet; a batch's gradient buffer and row (and a per-batch decoder
  slice) stay only when at most that threshold: larger ones are mapped and unmapped each
  batch (``benchmarks/memory_plan.py``: at batch 64 the selecting points measure what is
  alive, at batch 16 a batch's blocks more). The hand-written backward pass allocates its
  other working blocks in the same sizes block after block, so they refill their own holes.
- ``ranking`` (selection only, between batches): the ranking's normalised copy of the rows,
  made a chunk of about 256 MB at a time, ``min(rows, 256 MB)``.
- ``assemble`` (selection only, after the forward pass is freed): the graph's rows, the buffer's
  reordered at the kept columns, ``(K + k) M f32`` with ``M = K + L n + n + k``, and the block
  of ``ASSEMBLY_ROWS`` rows being gathered into them; on a GPU with the buffer on the device,
  that block is also there while it is gathered (``gather``).

Peak = max(forward + backward + max(build, fold), forward + backward + sources + rows +
max(batch + decoder + heap, ranking), sources + rows + assemble + gather). The forward pass's
trace is alive during the logit rows, and on the host its blocks stay in the heap after, so it
is counted beside the batch. On a GPU (``Shapes.on_host`` False) the terms on the host (the
kept-all rows or an offloaded buffer, the assembly) make ``Estimate.host_peak`` by the
same moments, and ``Estimate.peak`` has the rest; there is no heap term. On a CPU the host is
the device: ``peak`` has every term. The model's and the transcoders' weights (``weights``) are
resident before the run and come on top on the device; `Estimate.device_total` adds them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import torch

from .attribution import ASSEMBLY_ROWS, UPDATE_INTERVAL
from .replacement import ReplacementModel, run_linearised

F32 = 4  # bytes of a float32
# the backward pass's (n_pos, d_model)-sized blocks alive per batched row beside the heads'
# gradients (backward.py): the residual stream's gradient and the attention's result
BACKWARD_WORKING_SET = 2
# glibc malloc's largest dynamic mmap threshold (64-bit): blocks above it are always unmapped
# when freed, blocks up to it stay in the heap (the ``heap`` term)
MMAP_THRESHOLD_MAX = 32 * 2**20
RANKING_CHUNK_BYTES = 2**28  # attribution.partial_influences's default chunk


@dataclass(frozen=True)
class ActiveFeatures:
    """What `measure` found for one prompt: the inputs of `estimate` that need a forward pass."""

    n_pos: int
    per_layer: tuple[int, ...]  # active features of each layer (special first token excluded)
    densest: tuple[int, ...]  # per layer, the most active features at one position
    forward_bytes: int  # what the linearised forward's trace keeps, its patterns left out

    @property
    def total(self) -> int:
        return sum(self.per_layer)


@dataclass(frozen=True)
class Shapes:
    """The model and transcoder shapes `estimate` needs."""

    n_layers: int
    d_model: int
    n_heads: int  # attention heads (query heads): the backward pass keeps every layer's pattern
    attn_width: int  # heads x head_dim: the output projection's input width
    value_width: int  # key/value heads x head_dim: the value projection's output width
    out_layers: tuple[int, ...]  # per source layer, how many layers its decoder writes
    dtype_bytes: int  # of the model's dtype
    weight_bytes: int  # the model's parameters and the transcoders' encoders, on the device
    # the host's memory is the device's (CPU); on a GPU the kept-all rows and the assembly
    # live on the host and are not counted
    on_host: bool = True

    @classmethod
    def of(cls, model: ReplacementModel) -> Shapes:
        tc = model.transcoders
        params = sum(p.numel() * p.element_size() for p in model.model.parameters())
        encoders = sum(w.numel() * w.element_size() for w in tc.W_enc)
        w_v, w_o = model.adapter.value_and_output_weights(model.blocks[0])
        return cls(
            n_layers=model.n_layers,
            d_model=model.d_model,
            n_heads=int(model.text_config.num_attention_heads),
            attn_width=int(w_o.shape[1]),
            value_width=int(w_v.shape[0]),
            out_layers=tuple(dec.n_out_layers for dec in tc.decoders),
            dtype_bytes=torch.empty(0, dtype=model.dtype).element_size(),
            weight_bytes=params + encoders,
            on_host=model.device.type == "cpu",
        )


@dataclass(frozen=True)
class Layout:
    """Where `attribute` keeps its largest things (its ``hold_decoder_blocks``,
    ``offload_rows`` and ``ranking_entries`` options): every layer's decoder block held, or
    each built per batch (rows.py); the dense ranking buffer on the model's device, or on the
    host (attribution.py), or instead the sparse ranking keeping ``ranking_entries`` magnitudes
    of each feature row (sparse_ranking.py)."""

    hold_decoder_blocks: bool = True
    offload_rows: bool = False
    ranking_entries: int | None = None


# The dense layouts in the planner's order of preference: holding the blocks is what makes a
# CPU run fast (each batch re-reads the decoders otherwise), and an offloaded buffer crosses
# the bus at every re-ranking. The sparse ranking comes after all of them (`plan`): its column
# passes made a CPU run 2.8 x slower (docs/engine.md, "The sparse ranking").
LAYOUTS = (Layout(True, False), Layout(False, False), Layout(True, True), Layout(False, True))
# The magnitudes the planner lets each row keep when it chooses the sparse ranking, when they
# fit (fewer otherwise): from 2,048 of 72,576 active features on, the column passes were about
# the visited features' own, 0.9 x the nodes, against 1.5 x at 512 (benchmarks/sparse_ranking.py
# on Gemma-3-270M; docs/engine.md, "The sparse ranking")
RANKING_ENTRIES = 4096


@dataclass(frozen=True)
class Estimate:
    """Predicted peak bytes of one run, by term (module docstring), and the settings it is for."""

    terms: dict[str, int]
    peak: int  # on the model's device, the run's own, on top of the resident weights
    # on the host, beside a GPU run (the kept-all rows, an offloaded buffer, the
    # assembly); 0 on a CPU run, whose host is its device (``peak`` has it all)
    host_peak: int
    weights: int
    batch_size: int
    max_feature_nodes: int | None
    layout: Layout

    @property
    def device_total(self) -> int:
        return self.peak + self.weights

    def to_dict(self) -> dict[str, object]:
        return {
            "peak_bytes": self.peak,
            "host_peak_bytes": self.host_peak,
            "weights_bytes": self.weights,
            "device_total_bytes": self.device_total,
            "terms": dict(self.terms),
            "batch_size": self.batch_size,
            "max_feature_nodes": self.max_feature_nodes,
            "hold_decoder_blocks": self.layout.hold_decoder_blocks,
            "offload_rows": self.layout.offload_rows,
            "ranking_entries": self.layout.ranking_entries,
        }


def describe(planned: Estimate) -> str:
    """``batch size 32, decoder blocks held, dense ranking in place, about 61.2 GB``: a plan
    in words, for the CLI's ``--estimate-only``."""
    layout = planned.layout
    blocks = "decoder blocks held" if layout.hold_decoder_blocks else "decoder blocks per batch"
    if layout.ranking_entries is not None:
        ranking = f"sparse ranking of {layout.ranking_entries} entries a row"
    else:
        ranking = "dense ranking " + (
            "offloaded to the host" if layout.offload_rows else "in place"
        )
    return (
        f"batch size {planned.batch_size}, {blocks}, {ranking}, about "
        f"{readable_bytes(planned.device_total)}"
    )


def measure(
    model: ReplacementModel, tokens: torch.Tensor, zero_positions: int = 1
) -> ActiveFeatures:
    """Active features per layer and the forward pass's kept bytes, for `estimate`: one forward
    pass and the encoders, as `attribute` starts (the special first token's features dropped)."""
    tc = model.transcoders
    resident = [*model.model.parameters(), *tc.W_enc, *(w for w in tc.skip if w is not None)]
    weights = {p.untyped_storage().data_ptr() for p in resident}
    trace = run_linearised(model, tokens)
    # What the trace holds (it records no autograd graph). Its attention patterns are left
    # out: the backward pass takes them as it folds them (``backward``, ``fold``).
    kept = [*trace.feature_inputs, *trace.output_leaves, *trace.outputs]
    kept += [t for t in (trace.embed_leaf, trace.final_resid) if t is not None]
    kept += list(trace.norm_scales.values())
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in kept}
    forward_bytes = sum(n for ptr, n in storages.items() if ptr not in weights)
    per_layer, densest = [], []
    with torch.no_grad():
        for layer in range(model.n_layers):
            active = tc.encode(layer, trace.feature_inputs[layer].detach()[0]) != 0
            active[:zero_positions] = False
            counts = active.sum(dim=1)
            per_layer.append(int(counts.sum()))
            densest.append(int(counts.max()) if len(counts) else 0)
    return ActiveFeatures(len(tokens), tuple(per_layer), tuple(densest), forward_bytes)


def estimate(
    shapes: Shapes,
    active: ActiveFeatures,
    *,
    batch_size: int,
    max_feature_nodes: int | None,
    n_logits: int,
    layout: Layout = LAYOUTS[0],
) -> Estimate:
    """Peak bytes of `attribute` with these settings (the module docstring has the model)."""
    n, n_layers, d, b = active.n_pos, shapes.n_layers, shapes.d_model, shapes.dtype_bytes
    n_active = active.total
    keep = n_active if max_feature_nodes is None else min(max_feature_nodes, n_active)
    keep_all = keep == n_active
    n_cols = n_active + n_layers * n + n
    width = n_cols + n_logits
    per_layer = list(zip(active.per_layer, active.densest, shapes.out_layers, strict=True))
    held = sum(o * n * w * d * b for _, w, o in per_layer)
    scaled = max((2 * a * o * d * F32 for a, _, o in per_layer), default=0)
    # built per batch (rows.py, DecoderBlock.padded): one (source, output) layer's rows read in
    # float32 and, on a bf16 model, their cast, then the cast beside the padded slice
    cast = 0 if b == F32 else 1
    decoder = max(
        (max(a * d * (F32 + cast * b), a * d * b + n * w * d * b) for a, w, _ in per_layer),
        default=0,
    )
    rows = (keep + n_logits) * width * F32
    grad = batch_size * n * d * b  # one gradient-sized block
    grads = [grad] * BACKWARD_WORKING_SET
    grads += [batch_size * n * shapes.attn_width * b] * 2 + [
        batch_size * n * (shapes.attn_width // shapes.n_heads) * b
    ]
    if b != F32:
        grads += [batch_size * n * d * F32] * 2
    row = batch_size * width * F32
    batch = sum(grads) + row
    attn_weights = d * shapes.attn_width + shapes.value_width * d
    backward = n_layers * (shapes.n_heads * n * n + attn_weights) * b
    heap = heap_build = 0
    if shapes.on_host:  # the malloc heap's freed blocks (module docstring)
        # the build's: one layer's two decoder copies, the reconstruction; they set malloc's
        # mmap threshold for the batches to the largest of them
        built = [scaled // 2, scaled // 2, *[n * d * F32] * n_layers]
        threshold = min(max(built), MMAP_THRESHOLD_MAX)
        # a batch's gradient buffer and row (and a per-batch decoder slice) come from the heap,
        # and stay there, only when at most that size
        per_batch = [grad, row]
        if not layout.hold_decoder_blocks:
            per_batch += [max(a * d * F32, n * w * d * b) for a, w, _ in per_layer]
        heap_build = sum(block for block in built if block <= MMAP_THRESHOLD_MAX)
        heap = sum(block for block in per_batch if block <= threshold)
    # the ranking's normalised copy, one chunk of rows at a time (attribution.partial_influences)
    ranking = 0 if keep_all else min(rows, RANKING_CHUNK_BYTES)
    rank_rows = 0
    if layout.ranking_entries is not None and not keep_all:
        rows, ranking, rank_rows = _sparse_ranking(
            shapes, active, keep, n_logits, layout.ranking_entries, batch_size
        )
    m = keep + n_layers * n + n + n_logits
    # the graph's rows at its columns, gathered into them a block of rows at a time
    # (attribution._assemble): on a GPU the block is gathered on the buffer's device and copied
    gathered = min(ASSEMBLY_ROWS, keep + n_logits) * m * F32
    terms = {
        "forward": active.forward_bytes,
        "backward": backward,
        "sources": (held if layout.hold_decoder_blocks else 0) + (n_layers + 1) * n * d * F32,
        "build": scaled + n_layers * n * d * F32,
        # one layer's pattern in float32 while its norm scales are folded in (backward.py)
        "fold": shapes.n_heads * n * n * F32,
        "rows": rows,
        "batch": batch,
        "decoder": 0 if layout.hold_decoder_blocks else decoder,
        "heap": heap,
        "heap_build": heap_build,
        "ranking": ranking,
        "rank_rows": rank_rows,
        "assemble": 0 if keep_all else (keep + n_logits) * m * F32 + gathered,
        "gather": 0 if keep_all or shapes.on_host or layout.offload_rows else gathered,
    }
    # a GPU run fills the kept-all rows, and an offloaded buffer, on the host, and assembles
    # there; a CPU run's host is its device
    on_host = set() if shapes.on_host else {"assemble"}
    if not shapes.on_host and (keep_all or layout.offload_rows):
        on_host.add("rows")

    def moments(where: Callable[[str], bool]) -> int:
        t = {name: size if where(name) else 0 for name, size in terms.items()}
        alive = t["forward"] + t["backward"]
        # a per-batch decoder slice refills the build's holes: its rows are the size of the
        # build's decoder copies
        working = t["batch"] + t["heap"] + max(t["decoder"], t["heap_build"])
        return max(
            alive + max(t["build"], t["fold"]),
            alive + t["sources"] + t["rows"] + max(working, t["ranking"], t["rank_rows"]),
            t["sources"] + t["rows"] + t["assemble"] + t["gather"],
        )

    return Estimate(
        terms,
        peak=moments(lambda name: name not in on_host),
        host_peak=moments(lambda name: name in on_host),
        weights=shapes.weight_bytes,
        batch_size=batch_size,
        max_feature_nodes=max_feature_nodes,
        layout=layout,
    )


def _sparse_ranking(
    shapes: Shapes, active: ActiveFeatures, keep: int, n_logits: int, entries: int, batch: int
) -> tuple[int, int, int]:
    """The sparse ranking's terms (sparse_ranking.py): its rows, its re-ranking's working set
    and what a batch of rows adds as it is kept, in bytes (the module docstring has them)."""
    n, n_layers, d, b = active.n_pos, shapes.n_layers, shapes.d_model, shapes.dtype_bytes
    n_active, m = active.total, min(entries, active.total)
    fixed = n_layers * n + n  # the error and token columns
    every = keep + n_logits
    rows = (n_logits * (n_active + fixed) + keep * 2 * m + every * (fixed + keep + 1) + keep) * F32
    rows += keep * d * b  # the rows' encoder directions, for the column passes
    # the row weights: the series's matrix and the two steps that make it
    weights = 3 * every * every * F32
    # the bounds: lo, hi and the unvisited feature's lo (f32), two masks; the kept columns as
    # int64 and two products of the kept magnitudes
    bounds = 3 * n_active * F32 + 2 * n_active + keep * m * (8 + 2 * F32)
    # the column passes of the features near the cut, a batch at a time (columns.py): the
    # perturbation and, at its largest, the attention's step (the heads' results and their
    # reordered copy, a group's values and their transposed copy, the output; a layer's leaf
    # comes after it); the batch's columns and the best ``wanted`` so far beside the batch's
    wanted = min(UPDATE_INTERVAL * batch, keep)
    head = shapes.attn_width // shapes.n_heads
    passes = batch * n * (2 * d + 2 * shapes.attn_width + 2 * head) * b
    passes += keep * (3 * wanted + 2 * batch) * F32
    ranking = max(weights, bounds + passes)
    # a batch's rows kept (`add_feature_rows`): their magnitudes over the active features, their
    # entries at the visited columns, the top magnitudes (values, int64 columns, their int32 copy)
    rank_rows = batch * (n_active + fixed + n_logits) * F32  # the batch's rows
    rank_rows += batch * (n_active * F32 + keep * F32 + m * (F32 + 8 + 4))
    return rows, ranking, rank_rows


class MemoryBudgetExceeded(ValueError):
    """No batch size fits the run in the budget; the message says which setting to lower."""


def readable_bytes(n_bytes: float) -> str:
    """``92.0 GB``, or ``12.3 MB`` below a gigabyte (a CPU worker's small runs)."""
    return f"{n_bytes / 1e9:.1f} GB" if n_bytes >= 1e9 else f"{n_bytes / 1e6:.1f} MB"


def _largest_fitting(low: int, high: int, fits: Callable[[int], bool]) -> int | None:
    """The largest value in [low, high] for which ``fits`` holds (it holds below any value where
    it holds: the estimate grows with each setting), or None."""
    if not fits(low):
        return None
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if fits(mid) else (low, mid - 1)
    return low


def plan(
    shapes: Shapes,
    active: ActiveFeatures,
    *,
    budget_bytes: int,
    max_feature_nodes: int | None,
    n_logits: int,
    batch_size: int | None = None,
    default_batch_size: int = 256,
    host_budget_bytes: int | None = None,
    layouts: Sequence[Layout] = LAYOUTS,
    sparse_ranking: bool = True,
) -> Estimate:
    """The estimate of the run to do within ``budget_bytes`` of device memory (weights included)
    and, on a GPU, ``host_budget_bytes`` of host memory (None: not checked).

    ``batch_size=None`` lets the planner pick: the largest batch up to ``default_batch_size`` that
    fits. A given batch size is kept if it fits. The layout (`LAYOUTS`, offloading only on a GPU:
    on a CPU it moves nothing; ``layouts`` narrows the choice) is the first that fits the
    largest of those batches. When no dense layout fits and the run selects features, the
    sparse ranking (``sparse_ranking``; each dense layout that does not offload, with
    ``ranking_entries``) is planned the same way, with `RANKING_ENTRIES` magnitudes a row, or
    the most that fit at the smallest batch. Otherwise `MemoryBudgetExceeded` names what to
    set, the best any layout allows: the largest ``max_feature_nodes`` that fits at that batch
    size (batch size 1 when the planner picks), and, for a given batch size, the largest batch
    size that fits.
    """
    dense = [lay for lay in layouts if not (shapes.on_host and lay.offload_rows)]
    selecting = max_feature_nodes is not None and max_feature_nodes < active.total
    sparse = [
        Layout(lay.hold_decoder_blocks, False, min(RANKING_ENTRIES, active.total))
        for lay in dense
        if not lay.offload_rows and sparse_ranking and selecting
    ]

    def at(batch: int, layout: Layout, nodes: int | None = max_feature_nodes) -> Estimate:
        return estimate(
            shapes,
            active,
            batch_size=batch,
            max_feature_nodes=nodes,
            n_logits=n_logits,
            layout=layout,
        )

    def fits(e: Estimate) -> bool:
        host_fits = host_budget_bytes is None or e.host_peak <= host_budget_bytes
        return e.device_total <= budget_bytes and host_fits

    def fits_at(layout: Layout, batch: int) -> bool:
        return fits(at(batch, layout))

    def with_entries(layout: Layout, entries: int) -> Layout:
        return Layout(layout.hold_decoder_blocks, False, entries)

    def fits_with_entries(layout: Layout, batch: int, entries: int) -> bool:
        return fits_at(with_entries(layout, entries), batch)

    top = batch_size or default_batch_size
    low = top if batch_size else 1
    for group in (dense, sparse):
        best: Estimate | None = None
        for layout in group:
            chosen = _largest_fitting(low, top, partial(fits_at, layout))
            if chosen is None and layout.ranking_entries is not None:
                # fewer magnitudes a row (more column passes) at the smallest batch
                entries = _largest_fitting(1, layout.ranking_entries,
                                           partial(fits_with_entries, layout, low))  # fmt: skip
                if entries is not None:
                    layout, chosen = with_entries(layout, entries), low
            if chosen is not None and (best is None or chosen > best.batch_size):
                best = at(chosen, layout)
        if best is not None:
            return best

    # the refusal's figures: for each setting, the best any layout allows (the sparse ranking
    # at its smallest, one magnitude a row)
    candidates = dense + [with_entries(lay, 1) for lay in sparse]

    def best_of(low_: int, high: int, fits_with: Callable[[Layout, int], bool]) -> int | None:
        found = [_largest_fitting(low_, high, partial(fits_with, lay)) for lay in candidates]
        return max((v for v in found if v is not None), default=None)

    needed = min((at(low, lay) for lay in candidates), key=lambda e: e.device_total)
    fixes = []
    nodes_now = active.total if max_feature_nodes is None else min(max_feature_nodes, active.total)
    nodes = best_of(1, max(nodes_now - 1, 1), lambda lay, k: fits(at(low, lay, k)))
    if nodes is not None:
        fixes.append(f"max_feature_nodes ≤ {nodes}")
    if batch_size:
        smaller = best_of(1, batch_size, lambda lay, b: fits(at(b, lay)))
        if smaller is not None:
            fixes.append(f"batch size ≤ {smaller}")
    advice = " or ".join(fixes) if fixes else "use a shorter prompt"
    prefix = "set " if fixes else ""
    needs, has = readable_bytes(needed.device_total), readable_bytes(budget_bytes)
    if needed.device_total <= budget_bytes and host_budget_bytes is not None:
        # the device would do; its host cannot take the offloaded buffer
        needs = f"{readable_bytes(needed.host_peak)} of host memory"
        has = f"{readable_bytes(host_budget_bytes)} of host memory"
    raise MemoryBudgetExceeded(
        f"this prompt needs about {needs} "
        f"({active.n_pos} tokens, {active.total} active features, batch size {low}), "
        f"this worker has {has}: {prefix}{advice}"
    )


def device_memory(device: torch.device) -> int:
    """The memory a run on ``device`` may use when no budget is set: the GPU's total memory, or
    the machine's physical memory on the CPU."""
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory)
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


__all__ = [
    "LAYOUTS",
    "RANKING_ENTRIES",
    "ActiveFeatures",
    "Estimate",
    "Layout",
    "MemoryBudgetExceeded",
    "Shapes",
    "describe",
    "device_memory",
    "estimate",
    "measure",
    "plan",
    "readable_bytes",
]
