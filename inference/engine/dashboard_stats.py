"""Streaming per-layer statistics of the feature dashboards (see `dashboards` for what they are).

`_LayerState` folds each batch's activations into a layer's running counts, top examples, sample
reservoirs and fine histogram; `_picks` reads the chosen examples back out of it at the end. The
sort, rank, hash and bottom-k sampling helpers here are exact on every device.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

_EMPTY = torch.iinfo(torch.int64).max  # an unused reservoir slot sorts last
_PTR_BITS = 39  # token pointers below 2**39 (550 billion tokens)
_M31 = 2**31 - 1
_FINE_PER_BIN = 32


@dataclass(frozen=True)
class _Settings:
    top_k: int
    tokens_before: int
    tokens_after: int
    n_intervals: int
    examples_per_interval: int
    histogram_bins: int
    seed: int
    layers: tuple[int, ...]
    d_transcoder: int
    context: int  # longest context: token pointer = context index * context + position
    stream_windows: bool  # keep the candidates' windows while streaming (see `_LayerState`)

    @property
    def cells(self) -> int:
        return 1 << max(1, math.ceil(math.log2(4 * self.n_intervals)))

    @property
    def fine_bins(self) -> int:
        return _FINE_PER_BIN * self.histogram_bins

    @property
    def width(self) -> int:
        return self.tokens_before + 1 + self.tokens_after

    @property
    def places(self) -> int:
        """A feature's top examples and sample reservoir slots: at most this many windows."""
        return self.top_k + self.cells * self.examples_per_interval

    def window_store_bytes(self) -> int:
        """Bytes of every chosen layer's window store (float32 values)."""
        return len(self.layers) * self.d_transcoder * self.places * self.width * 4


# ---------------------------------------------------------------------------------------------
# Small exact helpers


def _lexsort(keys: Sequence[torch.Tensor]) -> torch.Tensor:
    """Indices sorting by keys[0], then keys[1], ... (stable sorts from the last key)."""
    order = torch.arange(len(keys[0]), device=keys[0].device)
    for key in reversed(keys):
        order = order[key[order].argsort(stable=True)]
    return order


def _group_rank(sorted_groups: torch.Tensor) -> torch.Tensor:
    """Rank of each element within its run of equal values (input sorted by group)."""
    n = len(sorted_groups)
    index = torch.arange(n, device=sorted_groups.device)
    first = torch.ones(n, dtype=torch.bool, device=sorted_groups.device)
    first[1:] = sorted_groups[1:] != sorted_groups[:-1]
    start = torch.where(first, index, 0).cummax(0).values
    return index - start


def _pow2_above(x: torch.Tensor) -> torch.Tensor:
    """The smallest power of two strictly above each positive x (0 where x is 0)."""
    _, exponent = torch.frexp(x)  # x = m * 2**e with m in [0.5, 1), so x < 2**e
    return torch.where(x > 0, torch.ldexp(torch.ones_like(x), exponent), torch.zeros_like(x))


def _mix(x: torch.Tensor) -> torch.Tensor:
    # Products of two values below 2**31 fit in int64, so this is exact on every device.
    x = (x * 1103515245 + 12345) % _M31
    x = x ^ (x >> 13)
    x = (x * 69069 + 907) % _M31
    return x ^ (x >> 16)


def _sample_keys(
    ptr: torch.Tensor, window: torch.Tensor, feature: torch.Tensor, salt: int
) -> torch.Tensor:
    """A unique sort key per (feature, token): a 23-bit hash of (feature, window) above the
    39-bit pointer, so repeats of one window share the hash and the earliest sorts first."""
    x = _mix((window % _M31) * 48271 % _M31 + feature)
    x = _mix((x * 16807 + salt + (window >> 31) % _M31) % _M31)
    return ((x >> 8) << _PTR_BITS) | ptr


def _bottom(keys: torch.Tensor, n: int, *carried: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The n smallest keys along the last dimension, one per window (hash), and the entries of
    each ``carried`` tensor (same shape) that go with them."""
    order = keys.argsort(-1)
    keys = keys.gather(-1, order)
    high = keys >> _PTR_BITS
    repeat = torch.zeros_like(keys, dtype=torch.bool)
    repeat[..., 1:] = (high[..., 1:] == high[..., :-1]) & (keys[..., 1:] != _EMPTY)
    keys = keys.masked_fill(repeat, _EMPTY)
    second = keys.argsort(-1)[..., :n]
    order = order.gather(-1, second)
    return keys.gather(-1, second), *(c.gather(-1, order) for c in carried)


def _window_hashes(
    tokens: torch.Tensor, lengths: torch.Tensor, before: int, after: int
) -> torch.Tensor:
    """(B, T) 62-bit hash of each position's example window (its clipped token list)."""
    b, t = tokens.shape
    pos = torch.arange(t, device=tokens.device)
    h1 = torch.zeros((b, t), dtype=torch.long, device=tokens.device)
    h2 = torch.zeros_like(h1)
    for offset in range(-before, after + 1):
        at = pos + offset
        inside = (at >= 1)[None, :] & (at[None, :] < lengths[:, None])
        value = torch.where(inside, tokens[:, at.clamp(0, t - 1)] + 2, 1)
        h1 = (h1 * 1000003 + value) % _M31
        h2 = (h2 * 998244353 % _M31 + value) % _M31
    return (h1 << 31) | h2


# ---------------------------------------------------------------------------------------------
# Per-layer running state


class _Activations(Protocol):
    """A batch's (B, T, F) activations, read a window at a time."""

    def windows(
        self, row: torch.Tensor, pos: torch.Tensor, feature: torch.Tensor, before: int, after: int
    ) -> torch.Tensor:
        """(n, before + 1 + after): feature[i]'s activations around pos[i] in row[i]."""
        ...


@dataclass
class _Firing:
    """Where one layer's features fire in a batch, in corpus order, and the batch's activations
    (for the windows of the examples that enter while streaming)."""

    row: torch.Tensor  # (n,) row in the batch
    pos: torch.Tensor  # (n,) position in the row
    feature: torch.Tensor  # (n,)
    value: torch.Tensor  # (n,) float32, > 0
    acts: _Activations


class _LayerState:
    """Everything kept for one layer's features while the corpus streams.

    With ``stream_windows`` each top example and reservoir entry also has its window of the
    feature's activations, copied from the batch it arrives in, so no second forward is needed
    at the end: ``store`` (F, places, width) holds them, and ``top_slot`` / ``res_slot`` say which
    of its feature's ``places`` rows each entry's window is in (-1: not copied yet). The windows
    stay where they are while the entries are sorted and moved; an entry that leaves frees its
    row for the next one. Insertions become rare as the thresholds rise, so the copying costs
    little; the store is fixed in size (``_Settings.window_store_bytes``)."""

    NAMES: tuple[str, ...] = ("n_fire", "total", "act_min", "top_val", "top_ptr", "top_hash")
    NAMES += ("R", "hist", "res_key", "res_val", "top_slot", "res_slot")

    def __init__(self, s: _Settings, layer: int, device: torch.device) -> None:
        f, k = s.d_transcoder, s.top_k
        self.s, self.layer = s, layer
        self.salt = (s.seed * 1000003 + layer * 7919 + 1) % _M31
        self.n_fire = torch.zeros(f, dtype=torch.long, device=device)
        self.total = torch.zeros(f, dtype=torch.float64, device=device)
        self.act_min = torch.full((f,), math.inf, device=device)
        self.top_val = torch.full((f, k), -math.inf, device=device)
        self.top_ptr = torch.full((f, k), -1, dtype=torch.long, device=device)
        self.top_hash = torch.full((f, k), -1, dtype=torch.long, device=device)
        self.R = torch.zeros(f, device=device)  # grid range per feature: [0, R)
        self.hist = torch.zeros((f, s.fine_bins), dtype=torch.int32, device=device)
        shape = (f, s.cells, s.examples_per_interval)
        self.res_key = torch.full(shape, _EMPTY, dtype=torch.long, device=device)
        self.res_val = torch.zeros(shape, device=device)
        self.top_slot = torch.full((f, k), -1, dtype=torch.long, device=device)
        self.res_slot = torch.full(shape, -1, dtype=torch.long, device=device)
        self.store = (
            torch.zeros((f, s.places, s.width), device=device) if s.stream_windows else None
        )
        self._fresh_top = self._fresh_cells = torch.zeros(0, dtype=torch.long, device=device)

    def _names(self) -> tuple[str, ...]:
        return self.NAMES + (("store",) if self.store is not None else ())

    def tensors(self, prefix: str) -> dict[str, torch.Tensor]:
        return {f"{prefix}{name}": getattr(self, name).cpu() for name in self._names()}

    def load(self, tensors: dict[str, torch.Tensor], prefix: str) -> None:
        for name in self._names():
            current = getattr(self, name)
            setattr(self, name, tensors[f"{prefix}{name}"].to(current.device, current.dtype))

    @torch.no_grad()
    def update(
        self,
        firing: _Firing,
        valid: torch.Tensor,
        first_row: int,
        whash: torch.Tensor,
        lengths: torch.Tensor,
    ) -> None:
        """Fold one batch in: where features fire, valid (B, T), whash (B, T) window hashes,
        lengths (B,) of its rows."""
        s = self.s
        # 1-D gathers by index_select and masked_select throughout: indexing with [] goes
        # through advanced indexing, 4x slower on these (n,) arrays.
        token = firing.row * valid.shape[1] + firing.pos  # (n,) index into the (B, T) batch
        keep = valid.reshape(-1).index_select(0, token)
        b, t = firing.row.masked_select(keep), firing.pos.masked_select(keep)
        f, v = firing.feature.masked_select(keep), firing.value.masked_select(keep)
        token = token.masked_select(keep)
        if len(f) == 0:
            return
        ptr = (first_row + b) * s.context + t
        n_features = s.d_transcoder
        self.n_fire += torch.bincount(f, minlength=n_features)
        self.total.index_add_(0, f, v.double())
        self.act_min.scatter_reduce_(0, f, v, "amin")
        batch_max = torch.zeros(n_features, device=v.device).scatter_reduce_(0, f, v, "amax")
        self._grow(_pow2_above(batch_max))
        scale = 1.0 / self.R.index_select(0, f)  # a power of two: v * scale * bins is exact
        fine = (v * scale * s.fine_bins).floor().long()
        ones = torch.ones_like(fine, dtype=torch.int32)
        self.hist.view(-1).index_add_(0, f * s.fine_bins + fine, ones)
        wh = whash.reshape(-1).index_select(0, token)
        # The features whose top examples and the (feature, cell) reservoirs this batch
        # changes (set by `_top` and `_sample`): only there can an entry be new, so
        # `_store_windows` looks there, not at every slot.
        self._fresh_top = self._fresh_cells = torch.zeros(0, dtype=torch.long, device=f.device)
        # The samples are drawn from the tokens that are not top examples: a token enters the
        # sample reservoirs when it arrives and is not kept as a top example, or later, when it
        # is pushed out of the top examples (it never comes back: those that push it out stay).
        # So the reservoirs hold a bottom-k of every firing token but the final top examples.
        # The batch's tokens and the pushed-out entries are screened apart (not laid end to end
        # first): only the few that enter a reservoir are gathered.
        pool, pushed = self._top_of(f, v, ptr, b, wh)
        batch_part = self._entering(f, v, ptr, wh, pool)
        pushed_part = self._entering(*pushed[:4])
        slot = torch.cat([torch.full_like(batch_part[0], -1), pushed[4][pushed_part[4]]])
        if len(slot):
            f, v, key, cell = (
                torch.cat([x, y]) for x, y in zip(batch_part[:4], pushed_part[:4], strict=True)
            )
            self._sample(f, v, key, cell, slot)
        if self.store is not None:
            self._store_windows(firing.acts, first_row, lengths)

    def _entering(
        self,
        f: torch.Tensor,
        v: torch.Tensor,
        ptr: torch.Tensor,
        wh: torch.Tensor,
        among: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, ...]:
        """(f, v, key, cell, index) of the tokens (of ``among``, default all) whose sample key
        is below their full reservoir's largest: only those can enter it (bottom-k), so the rest
        skip the sorting. Reservoirs are kept sorted, unused slots (_EMPTY) last."""
        s = self.s
        cell = (v * (1.0 / self.R.index_select(0, f)) * s.cells).floor().long()
        key = _sample_keys(ptr, wh, f, self.salt)
        per_cell = s.examples_per_interval
        last = (f * s.cells + cell) * per_cell + per_cell - 1
        enters = key < self.res_key.view(-1).index_select(0, last)
        if among is not None:
            enters &= among
        at = enters.nonzero().squeeze(1)
        return f[at], v[at], key[at], cell[at], at

    def _store_windows(self, acts: _Activations, first_row: int, lengths: torch.Tensor) -> None:
        """Copy the windows of the entries that arrived in this batch (slot -1) into free rows
        of their features' stores."""
        assert self.store is not None
        s, n_features = self.s, self.s.d_transcoder
        res_slot = self.res_slot.view(n_features, -1)
        fresh, cells = self._fresh_top, self._fresh_cells
        new_top = (self.top_slot.index_select(0, fresh) < 0) & (
            self.top_ptr.index_select(0, fresh) >= 0
        )
        top_at, top_i = new_top.nonzero(as_tuple=True)
        top_f = fresh[top_at]
        per_cell = s.examples_per_interval
        cell_slot = self.res_slot.view(-1, per_cell).index_select(0, cells)
        cell_key = self.res_key.view(-1, per_cell).index_select(0, cells)
        cell_at, j = ((cell_slot < 0) & (cell_key != _EMPTY)).nonzero(as_tuple=True)
        if len(top_f) + len(cell_at) == 0:
            return
        res_f = cells[cell_at] // s.cells
        res_i = cells[cell_at] % s.cells * per_cell + j
        res_ptr = cell_key[cell_at, j] & ((1 << _PTR_BITS) - 1)
        f = torch.cat([top_f, res_f])
        place = torch.cat([top_i, res_i + s.top_k])  # top examples first, then the reservoirs
        ptr = torch.cat([self.top_ptr[top_f, top_i], res_ptr])
        order = f.argsort(stable=True)
        f, place, ptr = f[order], place[order], ptr[order]
        touched, local = torch.unique_consecutive(f, return_inverse=True)
        slots = torch.cat(
            [self.top_slot.index_select(0, touched), res_slot.index_select(0, touched)], 1
        )
        used = torch.zeros((len(touched), s.places + 1), dtype=torch.bool, device=f.device)
        used.scatter_(1, torch.where(slots >= 0, slots, s.places), True)
        # The i-th new entry of a feature takes its i-th free row, in row order: found by a
        # binary search in the running count of free rows (listing every free row of the
        # touched features took 10x longer).
        free_count = (~used[:, : s.places]).reshape(-1).cumsum(0)
        before = torch.cat([free_count.new_zeros(1), free_count[s.places - 1 :: s.places][:-1]])
        found = torch.searchsorted(free_count, before[local] + _group_rank(f) + 1)
        slot = found - local * s.places
        is_top = place < s.top_k
        self.top_slot[f[is_top], place[is_top]] = slot[is_top]
        res_slot[f[~is_top], place[~is_top] - s.top_k] = slot[~is_top]
        row = ptr // s.context - first_row
        offsets = torch.arange(-s.tokens_before, s.tokens_after + 1, device=f.device)
        pos = (ptr % s.context)[:, None] + offsets[None, :]
        inside = (pos >= 1) & (pos < lengths[row][:, None])
        values = acts.windows(row, ptr % s.context, f, s.tokens_before, s.tokens_after)
        self.store.view(-1, s.width).index_copy_(
            0, f * s.places + slot, torch.where(inside, values.float(), 0.0)
        )

    def _top_of(
        self,
        f: torch.Tensor,
        v: torch.Tensor,
        ptr: torch.Tensor,
        row: torch.Tensor,
        wh: torch.Tensor,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """Fold a batch's tokens into the top examples and return the tokens the samples are
        drawn from: a mask of this batch's that are not top examples now, and (f, v, ptr, wh,
        slot) of the earlier ones just pushed out (with their window's slot). Only a token above
        its feature's k-th kept value can enter (a tie goes to the kept, earlier one; a kept
        entry dropped as a repeated window gives its place to the stronger repeat), so the
        others skip the sorting."""
        cand = (v > self.top_val[:, -1].index_select(0, f)).nonzero().squeeze(1)
        pool = torch.ones_like(f, dtype=torch.bool)
        if len(cand) == 0:
            none = f[:0]
            return pool, (none, v[:0], none, none, none)
        cf, cptr = f[cand], ptr[cand]
        touched = torch.unique(cf)
        old_val, old_ptr = (
            self.top_val.index_select(0, touched),
            self.top_ptr.index_select(0, touched),
        )
        old_hash = self.top_hash.index_select(0, touched)
        old_slot = self.top_slot.index_select(0, touched)
        self._top(cf, v[cand], cptr, row[cand], wh[cand])
        new_ptr = self.top_ptr.index_select(0, touched)
        slot = torch.searchsorted(touched, cf)
        pool[cand] = ~(new_ptr[slot] == cptr[:, None]).any(1)
        out = (old_ptr >= 0) & ~(old_ptr[:, :, None] == new_ptr[:, None, :]).any(-1)
        out_f = touched[:, None].expand_as(old_ptr)[out]
        return pool, (out_f, old_val[out], old_ptr[out], old_hash[out], old_slot[out])

    def _grow(self, needed: torch.Tensor) -> None:
        fresh = (self.R == 0) & (needed > 0)
        self.R = torch.where(fresh, needed, self.R)
        while True:
            grow = ((self.R > 0) & (needed > self.R)).nonzero().squeeze(1)
            if len(grow) == 0:
                return
            n, s = len(grow), self.s
            hist = self.hist[grow].view(n, s.fine_bins // 2, 2).sum(-1, dtype=torch.int32)
            self.hist[grow] = torch.cat([hist, torch.zeros_like(hist)], 1)
            shape = (n, s.cells // 2, 2 * s.examples_per_interval)
            keys, vals = self.res_key[grow].view(shape), self.res_val[grow].view(shape)
            slots = self.res_slot[grow].view(shape)
            keys, vals, slots = _bottom(keys, s.examples_per_interval, vals, slots)
            slots = slots.masked_fill(keys == _EMPTY, -1)  # a repeat left out frees its row
            self.res_key[grow] = torch.cat([keys, torch.full_like(keys, _EMPTY)], 1)
            self.res_val[grow] = torch.cat([vals, torch.zeros_like(vals)], 1)
            self.res_slot[grow] = torch.cat([slots, torch.full_like(slots, -1)], 1)
            self.R[grow] *= 2

    def _sample(
        self,
        f: torch.Tensor,
        v: torch.Tensor,
        key: torch.Tensor,
        cell: torch.Tensor,
        slot: torch.Tensor,
    ) -> None:
        s = self.s
        per_cell = s.examples_per_interval
        group = f * s.cells + cell
        order = _lexsort([group, key])
        group, key, v, slot = group[order], key[order], v[order], slot[order]
        high = key >> _PTR_BITS
        first = torch.ones_like(key, dtype=torch.bool)  # one token per window and cell
        first[1:] = (group[1:] != group[:-1]) | (high[1:] != high[:-1])
        group, key, v, slot = group[first], key[first], v[first], slot[first]
        rank = _group_rank(group)
        keep = rank < per_cell
        group, key, v, slot, rank = group[keep], key[keep], v[keep], slot[keep], rank[keep]
        touched, at = torch.unique_consecutive(group, return_inverse=True)
        self._fresh_cells = touched
        cand_key = torch.full((len(touched), per_cell), _EMPTY, dtype=torch.long, device=v.device)
        cand_val = torch.zeros((len(touched), per_cell), device=v.device)
        cand_slot = torch.full_like(cand_key, -1)
        cand_key[at, rank], cand_val[at, rank], cand_slot[at, rank] = key, v, slot
        flat_key = self.res_key.view(-1, per_cell)
        flat_val = self.res_val.view(-1, per_cell)
        flat_slot = self.res_slot.view(-1, per_cell)
        keys = torch.cat([flat_key.index_select(0, touched), cand_key], 1)
        vals = torch.cat([flat_val.index_select(0, touched), cand_val], 1)
        slots = torch.cat([flat_slot.index_select(0, touched), cand_slot], 1)
        keys, vals, slots = _bottom(keys, per_cell, vals, slots)
        flat_key.index_copy_(0, touched, keys)
        flat_val.index_copy_(0, touched, vals)
        flat_slot.index_copy_(0, touched, slots.masked_fill(keys == _EMPTY, -1))  # row freed

    def _top(
        self,
        f: torch.Tensor,
        v: torch.Tensor,
        ptr: torch.Tensor,
        row: torch.Tensor,
        wh: torch.Tensor,
    ) -> None:
        k = self.s.top_k
        # Each context's strongest token, then each distinct window's strongest occurrence.
        for by_window in (False, True):
            group = wh if by_window else row
            order = _lexsort([f, group, -v, ptr])
            f, v, ptr, row, wh, group = (x[order] for x in (f, v, ptr, row, wh, group))
            first = torch.ones_like(f, dtype=torch.bool)
            first[1:] = (f[1:] != f[:-1]) | (group[1:] != group[:-1])
            f, v, ptr, row, wh = (x[first] for x in (f, v, ptr, row, wh))
        order = _lexsort([f, -v, ptr])
        f, v, ptr, wh = f[order], v[order], ptr[order], wh[order]
        rank = _group_rank(f)
        keep = rank < k
        f, v, ptr, wh, rank = f[keep], v[keep], ptr[keep], wh[keep], rank[keep]
        touched, slot = torch.unique_consecutive(f, return_inverse=True)
        self._fresh_top = touched
        n = len(touched)
        cand_val = torch.full((n, k), -math.inf, device=v.device)
        cand_ptr = torch.full((n, k), -1, dtype=torch.long, device=v.device)
        cand_hash = torch.full((n, k), -1, dtype=torch.long, device=v.device)
        cand_val[slot, rank], cand_ptr[slot, rank], cand_hash[slot, rank] = v, ptr, wh
        # Kept entries come before this batch's in corpus order and both halves are sorted by
        # (value desc, pointer asc), so a stable sort on value keeps that order.
        vals = torch.cat([self.top_val.index_select(0, touched), cand_val], 1)
        ptrs = torch.cat([self.top_ptr.index_select(0, touched), cand_ptr], 1)
        hashes = torch.cat([self.top_hash.index_select(0, touched), cand_hash], 1)
        slots = torch.cat(
            [self.top_slot.index_select(0, touched), torch.full_like(cand_ptr, -1)], 1
        )
        order = (-vals).argsort(dim=1, stable=True)
        vals, ptrs, hashes = vals.gather(1, order), ptrs.gather(1, order), hashes.gather(1, order)
        slots = slots.gather(1, order)
        filled = vals > -math.inf  # the filled entries first: -inf sorts last
        # A repeat: a filled entry with the hash of an earlier one: the second and later of a
        # run of equal hashes in a stable sort (comparing every pair cost 4x more).
        sorted_hashes, by_hash = hashes.sort(dim=1, stable=True)
        repeat = torch.zeros_like(filled).scatter_(
            1, by_hash[:, 1:], sorted_hashes[:, 1:] == sorted_hashes[:, :-1]
        )
        repeat &= filled
        order = (~(filled & ~repeat)).to(torch.int8).argsort(dim=1, stable=True)[:, :k]
        vals, ptrs, hashes = vals.gather(1, order), ptrs.gather(1, order), hashes.gather(1, order)
        slots = slots.gather(1, order)
        dropped = ~torch.isfinite(vals) | repeat.gather(1, order)
        self.top_val.index_copy_(0, touched, vals.masked_fill(dropped, -math.inf))
        self.top_ptr.index_copy_(0, touched, ptrs.masked_fill(dropped, -1))
        self.top_hash.index_copy_(0, touched, hashes.masked_fill(dropped, -1))
        self.top_slot.index_copy_(0, touched, slots.masked_fill(dropped, -1))


@dataclass
class _Picks:
    """One layer's chosen examples as flat arrays: feature, pointer, value, group (-1 = top),
    in feature order (a feature's top examples by rank, then its interval samples by band)."""

    feature: torch.Tensor
    ptr: torch.Tensor
    value: torch.Tensor
    group: torch.Tensor
    slot: torch.Tensor  # the row of its window in the layer's store (with stream_windows)
    interval_edges: torch.Tensor  # (F, n_intervals + 1)


def _picks(state: _LayerState) -> _Picks:
    s = state.s
    top_val, top_ptr = state.top_val.cpu(), state.top_ptr.cpu()
    filled = top_ptr >= 0
    feature = torch.arange(s.d_transcoder)[:, None].expand_as(top_ptr)
    parts_f, parts_p, parts_v = [feature[filled]], [top_ptr[filled]], [top_val[filled]]
    parts_s = [state.top_slot.cpu()[filled]]
    parts_g = [torch.full((int(filled.sum()),), -1, dtype=torch.long)]
    # Interval i = cells [floor(i n / I), floor((i + 1) n / I)), n = cells up to act_max.
    R = state.R.cpu()
    act_max = top_val[:, 0].clamp(min=0)
    used = torch.where(R > 0, (act_max / R * s.cells).floor() + 1, 0).clamp(max=s.cells).long()
    bounds = torch.div(
        torch.arange(s.n_intervals + 1)[None, :] * used[:, None],
        s.n_intervals,
        rounding_mode="floor",
    )
    edges = bounds.float() * (R / s.cells)[:, None]
    keys, vals, slots = state.res_key.cpu(), state.res_val.cpu(), state.res_slot.cpu()
    cells = torch.arange(s.cells)
    interval = (bounds[:, None, 1:] <= cells[None, :, None]).sum(-1)  # (F, cells)
    for i in range(s.n_intervals):
        inside = (interval == i)[..., None] & (keys != _EMPTY)
        k = torch.where(inside, keys, _EMPTY).reshape(s.d_transcoder, -1)
        chosen, value, slot = _bottom(
            k,
            s.examples_per_interval,
            vals.reshape(s.d_transcoder, -1),
            slots.reshape(s.d_transcoder, -1),
        )
        ok = chosen != _EMPTY
        parts_f.append(torch.arange(s.d_transcoder)[:, None].expand_as(chosen)[ok])
        parts_p.append(chosen[ok] & ((1 << _PTR_BITS) - 1))
        parts_v.append(value[ok])
        parts_s.append(slot[ok])
        parts_g.append(torch.full((int(ok.sum()),), i, dtype=torch.long))
    # In feature order (each feature's top examples by rank, then each interval's samples):
    # one sort of unique keys (feature, pick); a stable sort took 8x longer. The windows are
    # then read in this order, so a chunk of features' JSON is one run of them.
    f_all = torch.cat(parts_f)
    order = (f_all * len(f_all) + torch.arange(len(f_all))).sort().indices
    return _Picks(
        f_all[order],
        torch.cat(parts_p)[order],
        torch.cat(parts_v)[order],
        torch.cat(parts_g)[order],
        torch.cat(parts_s)[order],
        edges,
    )
