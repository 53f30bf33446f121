"""The influence ranking without the dense ranking buffer: each row keeps its largest entries.

The dense ranking (attribution.py) keeps every computed row over every active feature, the
`(K+k)(N+k)` float32 buffer: 454 GB at 8,192 nodes of an 8,192-token Gemma-2-2B-shaped prompt
(docs/engine.md, "Long prompts"). A ranking needs, for the current row weights ``t`` (from the
rows' block at the visited features' columns), every unvisited feature's influence
``Σ_r t_r |A[r, c]| / s_r``, and only to find the next ``wanted`` largest. So each row keeps:

- its L1 sum ``s_r`` over every column, exact;
- its entries at the error and token columns, and at the columns of every feature visited so far
  (those it has when it is computed, and those visited later, which a column pass gives:
  columns.py): the graph's rows, exact;
- the ``entries`` largest magnitudes among the other features' columns, and ``τ_r``, the smallest
  of them: any entry it dropped is at most ``τ_r``.

The logit rows are few and weigh most; they are kept whole. A feature's influence is then
known within ``[lo, hi]``: ``lo`` from the entries kept, ``hi`` adding ``t_r τ_r / s_r`` for each
row that dropped it. With ``θ`` the ``wanted``-th largest ``lo``, every feature whose ``hi`` is
below ``θ`` is out; the others' columns come from column passes, their influences are then exact,
and the ``wanted`` largest are the dense ranking's choice (up to float rounding and ties).
The visited features' columns are needed by the graph anyway, so the passes beyond the dense
ranking's work are those of the near-misses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from .columns import ColumnPass, Targets
from .rows import RowComputer, visit_order

# Slack on the bound test, relative: lo and hi are float32 sums in another order than the exact
# influences, so a feature whose hi is a rounding error below θ still gets its column pass.
_BOUND_SLACK = 1e-4


@dataclass
class SparseRows:
    """Where rows go when the ranking keeps ``entries`` of each (docs/engine.md, "Memory")."""

    computer: RowComputer
    logits: torch.Tensor  # (k, N) the logit rows, whole
    n_keep: int
    entries: int  # kept per feature row (the active count when that is fewer)
    top_abs: torch.Tensor  # (K, entries) float32 magnitudes, feature rows in visit order
    top_idx: torch.Tensor  # (K, entries) int32 their columns
    tau: torch.Tensor  # (K,) the smallest kept magnitude, 0 when nothing was dropped
    rowsum: torch.Tensor  # (k + K,) L1 sums over every column
    fixed: torch.Tensor  # (k + K, N - n_active) the error and token columns
    visited_cols: torch.Tensor  # (k + K, K) entries at the visited features' columns (slots)
    order: torch.Tensor  # (K,) the feature in each slot, on the CPU (its row is k + slot)
    vectors: torch.Tensor  # (K, d) each feature row's direction, for the column passes
    n_slots: int = 0  # features given a slot (selected)
    n_rows: int = 0  # feature rows computed
    column_passes: int = 0  # columns computed (tests/engine/test_sparse_ranking.py reads it)
    passes: ColumnPass = field(init=False)

    def __post_init__(self) -> None:
        self.passes = ColumnPass(self.computer)

    @classmethod
    def allocate(
        cls, computer: RowComputer, n_logits: int, n_keep: int, entries: int, device: torch.device
    ) -> SparseRows:
        if entries < 1:
            raise ValueError("ranking_entries must be >= 1")
        n_active, n_cols = computer.n_active, computer.n_cols
        entries = min(entries, n_active)
        rows = n_logits + n_keep
        dtype = computer.encoder_rows(torch.zeros(0, dtype=torch.long, device=device)).dtype
        return cls(
            computer=computer,
            logits=torch.zeros(n_logits, n_cols, device=device),
            n_keep=n_keep,
            entries=entries,
            top_abs=torch.zeros(n_keep, entries, device=device),
            top_idx=torch.zeros(n_keep, entries, dtype=torch.int32, device=device),
            tau=torch.zeros(n_keep, device=device),
            rowsum=torch.zeros(rows, device=device),
            fixed=torch.zeros(rows, n_cols - n_active, device=device),
            visited_cols=torch.zeros(rows, n_keep, device=device),
            order=torch.zeros(n_keep, dtype=torch.long),
            vectors=torch.zeros(
                n_keep, computer.token_vectors.shape[1], dtype=dtype, device=device
            ),
        )

    @property
    def n_logits(self) -> int:
        return self.logits.shape[0]

    def add_logit_rows(self, first: int, result: torch.Tensor) -> None:
        rows = slice(first, first + len(result))
        self.logits[rows] = result
        self.rowsum[rows] = result.abs().sum(1)
        self.fixed[rows] = result[:, self.computer.n_active :]

    def add_feature_rows(self, result: torch.Tensor) -> None:
        """The next rows in slot order (`next_features` gave the slots), (b, N) each."""
        n_active, first, k = self.computer.n_active, self.n_rows, self.n_logits
        b = len(result)
        if first + b > self.n_slots:
            raise RuntimeError("rows computed for features the ranking did not select")
        rows = slice(k + first, k + first + b)
        self.rowsum[rows] = result.abs().sum(1)
        self.fixed[rows] = result[:, n_active:]
        seen = self.order[: self.n_slots].to(result.device)
        self.visited_cols[rows, : self.n_slots] = result[:, seen]
        magnitudes = result[:, :n_active].abs()
        magnitudes[:, seen] = 0  # their entries are kept exactly, above
        top = torch.topk(magnitudes, self.entries, dim=1)
        self.top_abs[first : first + b] = top.values
        self.top_idx[first : first + b] = top.indices.to(torch.int32)
        dropped = self.entries < n_active - self.n_slots
        self.tau[first : first + b] = top.values[:, -1] if dropped else 0.0
        self.vectors[first : first + b] = self.computer.encoder_rows(
            self.order[first : first + b].to(result.device)
        )
        self.n_rows += b

    def _row_weights(self, probabilities: torch.Tensor, max_iter: int = 128) -> torch.Tensor:
        """(k + R,) influence arriving at each row, divided by its L1 sum: the power series on
        the rows' block at the visited features' columns (as `partial_influences`)."""
        k, r = self.n_logits, self.n_rows
        norm = self.rowsum[: k + r].clamp(min=1e-8)
        among = torch.zeros(k + r, k + r, device=norm.device)
        among[:, k:] = self.visited_cols[: k + r, :r].abs() / norm[:, None]
        weight = torch.zeros(k + r, device=norm.device)
        weight[:k] = probabilities
        total = torch.zeros_like(weight)
        for _ in range(max_iter):
            if not weight.any():
                return total / norm
            total += weight
            weight = weight @ among
        raise RuntimeError("feature influence did not converge; the graph has a cycle")

    def next_features(
        self,
        probabilities: torch.Tensor,
        visited: torch.Tensor,
        wanted: int,
        batch_size: int,
        check_stop: Callable[[], None],
    ) -> torch.Tensor:
        """The `wanted` most influential unvisited features, in the order their rows are to be
        computed (`visit_order`); they get the next slots and their columns over the rows so
        far. Every selected row must be computed (`add_feature_rows`) before the next call."""
        if self.n_rows != self.n_slots:
            raise RuntimeError("the previous selection's rows were not all computed")
        n_active, k, r = self.computer.n_active, self.n_logits, self.n_rows
        w = self._row_weights(probabilities)
        device = w.device
        lo = w[:k] @ self.logits[:, :n_active].abs()
        unvisited = ~visited.to(device)
        if r:
            kept = self.top_idx[:r].flatten().long()
            lo.index_add_(0, kept, (w[k:, None] * self.top_abs[:r]).flatten())
            slack = w[k:] * self.tau[:r]
            hi = lo + slack.sum()
            hi.index_add_(0, kept, -slack[:, None].expand(-1, self.entries).flatten())
            theta = torch.topk(lo[unvisited], wanted).values[-1]
            near = unvisited & (hi * (1 + _BOUND_SLACK) >= theta)
            chosen, columns = self._exact_best(near.nonzero().squeeze(1), w, wanted, batch_size,
                                               check_stop)  # fmt: skip
        else:  # the logit rows alone: whole, so lo is exact
            ranked = torch.where(unvisited, lo, -1.0)
            chosen = torch.topk(ranked, wanted).indices
            columns = torch.zeros(0, wanted, device=device)
        pending = visit_order(chosen.cpu(), self.computer.active_features, batch_size)
        ascending = chosen.cpu().sort()
        where = ascending.indices[torch.searchsorted(ascending.values, pending)]  # in `chosen`
        slots = slice(self.n_slots, self.n_slots + wanted)
        self.order[slots] = pending
        on_device = pending.to(device)
        self.visited_cols[:k, slots] = self.logits[:, on_device]
        self.visited_cols[k : k + r, slots] = columns[:, where.to(device)]
        self.n_slots += wanted
        return pending

    def _exact_best(
        self,
        near: torch.Tensor,
        w: torch.Tensor,
        wanted: int,
        batch_size: int,
        check_stop: Callable[[], None],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The `wanted` largest exact influences among features `near` and their columns over
        the feature rows, (wanted,) and (R, wanted): column passes a batch at a time, keeping
        the best so far (bounded memory however many are near the cut)."""
        k, r = self.n_logits, self.n_rows
        computer = self.computer
        targets = Targets(
            computer.active_features[self.order[:r], 0],
            computer.active_features[self.order[:r], 1],
            self.vectors[:r],
        )
        near = near[torch.argsort(computer.active_features[near.cpu(), 1].to(near.device))]
        best_ids = torch.zeros(0, dtype=torch.long, device=w.device)
        best_vals = torch.zeros(0, device=w.device)
        best_cols = torch.zeros(r, 0, device=w.device)
        for c in range(0, len(near), batch_size):
            check_stop()
            idx = near[c : c + batch_size]
            cols = self.passes.columns(idx, targets)  # (R, b)
            self.column_passes += len(idx)
            exact = w[:k] @ self.logits[:, idx].abs() + w[k:] @ cols.abs()
            ids = torch.cat([best_ids, idx])
            vals = torch.cat([best_vals, exact])
            every = torch.cat([best_cols, cols], 1)
            top = torch.topk(vals, min(wanted, len(vals))).indices
            best_ids, best_vals, best_cols = ids[top], vals[top], every[:, top]
        return best_ids, best_cols

    def assemble(self, visited: torch.Tensor, block_rows: int) -> torch.Tensor:
        """The graph's rows (graph.py ``target_rows``: features by index, then logits) at its
        columns (the kept features, errors, tokens, logits), on the CPU, gathered
        ``block_rows`` rows at a time (as the dense assembly: no copy of the rows in the
        graph's order)."""
        k, n, n_fixed = self.n_logits, self.n_slots, self.fixed.shape[1]
        slot_of = torch.empty(self.computer.n_active, dtype=torch.long)
        slot_of[self.order[:n]] = torch.arange(n)
        selected = visited.nonzero().squeeze(1)
        slots = slot_of[selected]
        row_order = torch.cat([k + slots, torch.arange(k)])
        device = self.visited_cols.device
        columns = slots.to(device)
        out = torch.zeros(len(row_order), n + n_fixed + k)
        for i in range(0, len(row_order), block_rows):
            block = row_order[i : i + block_rows].to(device)
            out[i : i + len(block), :n] = self.visited_cols[block[:, None], columns].cpu()
            out[i : i + len(block), n : n + n_fixed] = self.fixed[block].cpu()
        return out
