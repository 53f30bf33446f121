"""`compute_dashboards()`: feature dashboards of a transcoder set, streamed over a corpus.

For every feature of the chosen layers, over the tokens of a corpus (position 0 of each context,
the special first token, and padding excluded; a feature *fires* where its activation is > 0, so a
TopK feature kept with a negative pre-activation does not count):

- ``act_max``, ``act_min`` and ``act_mean`` over the tokens where it fires, and
  ``activation_frequency`` = firings / tokens;
- **top examples**: the ``top_k`` contexts with the highest activation, each shown around its
  strongest token, at most one example per context and per distinct window (a templated corpus
  repeats sentences). Order: activation descending; ties go to the earlier token in corpus order
  (context index, then position), and of two windows with the same tokens the earlier is kept;
- **interval samples**: ``n_intervals`` activation bands covering (0, act_max] (edges in
  ``quantile_intervals``, lower edges in ``quantile_values``), from each up to
  ``examples_per_interval`` distinct windows drawn uniformly without replacement from the
  windows of its firing tokens (each shown at its earliest token in the band). The draw is a
  bottom-k sample by a hash of (seed, layer, feature, window), so it is reproducible and does not
  depend on the batch size or on a resume;
- ``histogram``: ``{"edges", "counts"}``, ``histogram_bins`` equal bins from 0 to an upper edge at
  most 1/16 of a bin-width-multiple above act_max (see "Ranges" below); counts sum to the firings;
- **output tokens**: ``top_logits`` / ``bottom_logits`` with ``top_logits_values`` /
  ``bottom_logits_values``: the feature's decoder direction times the final norm's gain
  (``1 + w`` for Gemma), through the unembedding, special tokens left out. A cross-layer
  transcoder feature writes to every layer from its own to the last, and all those writes add up
  in the residual stream the unembedding reads, so its direction is the **sum of its decoders over
  all output layers** (its total direct effect on the logits, later layers' nonlinearity aside).

Memory does not grow with the corpus: per feature the state is the running top-k (value, token
pointer, window hash), a fixed grid of sample reservoirs and a fine histogram, all on the model's
device (about ``8 + 20·top_k + 12·cells·examples_per_interval + 4·32·histogram_bins`` bytes,
``cells`` = the power of two ≥ 4·n_intervals). Token windows are not kept while streaming: the
contexts the chosen examples come from are read and run again at the end ("examples" phase), and
every layer is encoded from that one forward pass per batch.

Ranges: each feature's values are binned on a grid over [0, R), R the smallest power of two above
its running maximum; when the maximum passes R, R doubles and neighbouring bins merge, which is
exact. The histogram keeps ``32·histogram_bins`` fine bins, the samples ``cells`` reservoirs; at
the end, whole fine bins (cells) are grouped into the reported bins (intervals).

Job-system interface (as ``attribute()``):
- ``on_progress(phase, fraction)`` with phase in ``PHASES`` after every batch;
- ``should_stop()`` polled before every batch; when True a checkpoint is written (if
  ``checkpoint`` is set) and ``DashboardsCancelled`` is raised;
- ``checkpoint``: a file written every ``checkpoint_every`` batches and when streaming ends; a
  rerun with the same settings continues from it; it is removed when the run finishes.

The corpus is any re-iterable of contexts (1-D token-id tensors or lists, each starting with the
special first token), such as a list or a ``corpus.TokenizedCorpus``; it is read three times
(measured, streamed, and for the examples' contexts).
"""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn
from transformers import PreTrainedModel

from .adapters import resolve
from .freezing import first_tensor_arg, norm_eps, norm_scale, normalized
from .replacement import ReplacementModel
from .transcoders import Transcoders

PHASES = ("activations", "examples", "outputs")
_T = TypeVar("_T")
ProgressCallback = Callable[[str, float], None]
Feature = dict[str, Any]

_EMPTY = torch.iinfo(torch.int64).max  # an unused reservoir slot sorts last
_PTR_BITS = 39  # token pointers below 2**39 (550 billion tokens)
_M31 = 2**31 - 1
_FINE_PER_BIN = 32


class DashboardsCancelled(Exception):
    """`should_stop()` returned True between two batches (the checkpoint, if any, is kept)."""


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

    @property
    def cells(self) -> int:
        return 1 << max(1, math.ceil(math.log2(4 * self.n_intervals)))

    @property
    def fine_bins(self) -> int:
        return _FINE_PER_BIN * self.histogram_bins


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


def _bottom(keys: torch.Tensor, vals: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The n smallest keys along the last dimension, one per window (hash), and their values."""
    order = keys.argsort(-1)
    keys, vals = keys.gather(-1, order), vals.gather(-1, order)
    high = keys >> _PTR_BITS
    repeat = torch.zeros_like(keys, dtype=torch.bool)
    repeat[..., 1:] = (high[..., 1:] == high[..., :-1]) & (keys[..., 1:] != _EMPTY)
    keys = keys.masked_fill(repeat, _EMPTY)
    order = keys.argsort(-1)[..., :n]
    return keys.gather(-1, order), vals.gather(-1, order)


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


class _LayerState:
    """Everything kept for one layer's features while the corpus streams."""

    NAMES: tuple[str, ...] = ("n_fire", "total", "act_min", "top_val", "top_ptr", "top_hash")
    NAMES += ("R", "hist", "res_key", "res_val")

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

    def tensors(self, prefix: str) -> dict[str, torch.Tensor]:
        return {f"{prefix}{name}": getattr(self, name).cpu() for name in self.NAMES}

    def load(self, tensors: dict[str, torch.Tensor], prefix: str) -> None:
        for name in self.NAMES:
            current = getattr(self, name)
            setattr(self, name, tensors[f"{prefix}{name}"].to(current.device, current.dtype))

    @torch.no_grad()
    def update(
        self, acts: torch.Tensor, valid: torch.Tensor, first_row: int, whash: torch.Tensor
    ) -> None:
        """Fold one batch in: acts (B, T, F), valid (B, T), whash (B, T) window hashes."""
        s = self.s
        b, t, f = ((acts > 0) & valid[..., None]).nonzero(as_tuple=True)  # corpus order
        if len(f) == 0:
            return
        v = acts[b, t, f].float()
        ptr = (first_row + b) * s.context + t
        n_features = s.d_transcoder
        self.n_fire += torch.bincount(f, minlength=n_features)
        self.total.index_add_(0, f, v.double())
        self.act_min.scatter_reduce_(0, f, v, "amin")
        batch_max = torch.zeros(n_features, device=v.device).scatter_reduce_(0, f, v, "amax")
        self._grow(_pow2_above(batch_max))
        scale = 1.0 / self.R[f]  # a power of two: v * scale * bins is exact
        fine = (v * scale * s.fine_bins).floor().long()
        ones = torch.ones_like(fine, dtype=torch.int32)
        self.hist.view(-1).index_add_(0, f * s.fine_bins + fine, ones)
        wh = whash[b, t]
        self._sample(f, v, ptr, wh, (v * scale * s.cells).floor().long())
        self._top(f, v, ptr, b, wh)

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
            keys, vals = _bottom(keys, vals, s.examples_per_interval)
            self.res_key[grow] = torch.cat([keys, torch.full_like(keys, _EMPTY)], 1)
            self.res_val[grow] = torch.cat([vals, torch.zeros_like(vals)], 1)
            self.R[grow] *= 2

    def _sample(
        self,
        f: torch.Tensor,
        v: torch.Tensor,
        ptr: torch.Tensor,
        wh: torch.Tensor,
        cell: torch.Tensor,
    ) -> None:
        s = self.s
        per_cell = s.examples_per_interval
        key = _sample_keys(ptr, wh, f, self.salt)
        group = f * s.cells + cell
        order = _lexsort([group, key])
        group, key, v = group[order], key[order], v[order]
        high = key >> _PTR_BITS
        first = torch.ones_like(key, dtype=torch.bool)  # one token per window and cell
        first[1:] = (group[1:] != group[:-1]) | (high[1:] != high[:-1])
        group, key, v = group[first], key[first], v[first]
        rank = _group_rank(group)
        keep = rank < per_cell
        group, key, v, rank = group[keep], key[keep], v[keep], rank[keep]
        touched, slot = torch.unique_consecutive(group, return_inverse=True)
        cand_key = torch.full((len(touched), per_cell), _EMPTY, dtype=torch.long, device=v.device)
        cand_val = torch.zeros((len(touched), per_cell), device=v.device)
        cand_key[slot, rank] = key
        cand_val[slot, rank] = v
        flat_key = self.res_key.view(-1, per_cell)
        flat_val = self.res_val.view(-1, per_cell)
        keys = torch.cat([flat_key[touched], cand_key], 1)
        vals = torch.cat([flat_val[touched], cand_val], 1)
        flat_key[touched], flat_val[touched] = _bottom(keys, vals, per_cell)

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
        n = len(touched)
        cand_val = torch.full((n, k), -math.inf, device=v.device)
        cand_ptr = torch.full((n, k), -1, dtype=torch.long, device=v.device)
        cand_hash = torch.full((n, k), -1, dtype=torch.long, device=v.device)
        cand_val[slot, rank], cand_ptr[slot, rank], cand_hash[slot, rank] = v, ptr, wh
        # Kept entries come before this batch's in corpus order and both halves are sorted by
        # (value desc, pointer asc), so a stable sort on value keeps that order.
        vals = torch.cat([self.top_val[touched], cand_val], 1)
        ptrs = torch.cat([self.top_ptr[touched], cand_ptr], 1)
        hashes = torch.cat([self.top_hash[touched], cand_hash], 1)
        order = (-vals).argsort(dim=1, stable=True)
        vals, ptrs, hashes = vals.gather(1, order), ptrs.gather(1, order), hashes.gather(1, order)
        filled = vals > -math.inf
        same = hashes[:, :, None] == hashes[:, None, :]
        earlier = torch.ones((2 * k, 2 * k), dtype=torch.bool, device=v.device).tril(-1)
        repeat = (same & earlier & filled[:, None, :]).any(-1)
        order = (~(filled & ~repeat)).to(torch.int8).argsort(dim=1, stable=True)[:, :k]
        vals, ptrs, hashes = vals.gather(1, order), ptrs.gather(1, order), hashes.gather(1, order)
        dropped = ~torch.isfinite(vals) | repeat.gather(1, order)
        self.top_val[touched] = vals.masked_fill(dropped, -math.inf)
        self.top_ptr[touched] = ptrs.masked_fill(dropped, -1)
        self.top_hash[touched] = hashes.masked_fill(dropped, -1)


# ---------------------------------------------------------------------------------------------
# Forward pass: every chosen layer's transcoder input from one forward


class _Enough(Exception):
    """Raised by the last layer's hook: nothing after it is needed."""


@contextmanager
def _encoding(
    rm: ReplacementModel, layers: Sequence[int], on_acts: Callable[[int, torch.Tensor], None]
) -> Iterator[None]:
    """Hooks that encode each chosen layer's transcoder input and hand (layer, acts (B, T, F))
    to ``on_acts``; the forward stops after the last chosen layer. Always removed on exit."""
    path, kind = rm.adapter.hook(rm.transcoders.feature_input_hook)
    last = max(layers)
    handles = []

    def hook_for(layer: int, module: nn.Module) -> Callable[..., None]:
        eps = norm_eps(module)

        def hook(_m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            x = first_tensor_arg(args, kwargs)
            if kind == "normalized":  # the norm's output before its weight
                kind_ = rm.adapter.norm_kind
                x = normalized(x, kind_, norm_scale(x, kind_, eps)).to(x.dtype)
            shape = x.shape
            acts = rm.transcoders.encode(layer, x.reshape(-1, shape[-1]))
            on_acts(layer, acts.reshape(*shape[:-1], -1))
            if layer == last:
                raise _Enough

        return hook

    try:
        for layer in layers:
            module = resolve(rm.blocks[layer], path)
            handles.append(
                module.register_forward_pre_hook(hook_for(layer, module), with_kwargs=True)
            )
        yield
    finally:
        for handle in handles:
            handle.remove()


def _batches(rows: Iterable[_T], size: int) -> Iterator[list[_T]]:
    batch: list[_T] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _padded(
    batch: list[torch.Tensor], pad: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T) tokens padded on the right (causal attention: padding never reaches earlier
    positions, and padded positions are excluded) and (B,) lengths."""
    lengths = torch.tensor([len(r) for r in batch])
    tokens = torch.full((len(batch), int(lengths.max())), pad, dtype=torch.long)
    for i, row in enumerate(batch):
        tokens[i, : len(row)] = row
    return tokens.to(device), lengths.to(device)


def _run(
    rm: ReplacementModel,
    tokens: torch.Tensor,
    layers: Sequence[int],
    on_acts: Callable[[int, torch.Tensor], None],
) -> None:
    with torch.no_grad(), _encoding(rm, layers, on_acts), suppress(_Enough):
        rm.model(input_ids=tokens, use_cache=False)


# ---------------------------------------------------------------------------------------------
# The entry point


def _as_rows(corpus: Iterable[Any], vocab: int) -> Iterator[torch.Tensor]:
    for i, row in enumerate(corpus):
        tensor = torch.as_tensor(row, dtype=torch.long).reshape(-1)
        if len(tensor) == 0:
            raise ValueError(f"corpus context {i} is empty")
        if int(tensor.min()) < 0 or int(tensor.max()) >= vocab:
            raise ValueError(f"corpus context {i} has token ids outside [0, {vocab})")
        yield tensor


class _TokenNames:
    def __init__(self, rm: ReplacementModel) -> None:
        self.rm = rm
        self.cache: dict[int, str] = {}

    def __call__(self, token: int) -> str:
        if token not in self.cache:
            self.cache[token] = self.rm.decode_token(token)
        return self.cache[token]


def _save_checkpoint(path: Path, states: list[_LayerState], meta: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    for state in states:
        tensors.update(state.tensors(f"{state.layer}."))
    partial = path.with_name(path.name + ".partial")
    save_file(tensors, str(partial), metadata={"meta": json.dumps(meta)})
    partial.replace(path)  # never a half-written checkpoint


def _load_checkpoint(
    path: Path, states: list[_LayerState], settings: dict[str, Any]
) -> dict[str, Any]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["meta"])
        if meta["settings"] != settings:
            raise ValueError(
                f"checkpoint {path} was written with other settings; delete it to start over"
            )
        tensors = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118 -- not a mapping
    for state in states:
        state.load(tensors, f"{state.layer}.")
    return meta


def _fold(
    by_layer: dict[int, _LayerState],
    valid: torch.Tensor,
    first_row: int,
    whash: torch.Tensor,
    layer: int,
    acts: torch.Tensor,
) -> None:
    by_layer[layer].update(acts, valid, first_row, whash)


@torch.no_grad()
def compute_dashboards(
    model: PreTrainedModel,
    transcoders: Transcoders,
    corpus: Iterable[Any],
    *,
    tokenizer: Any = None,
    layers: Sequence[int] | None = None,
    top_k: int = 20,
    tokens_before: int = 32,
    tokens_after: int = 32,
    n_intervals: int = 10,
    examples_per_interval: int = 5,
    histogram_bins: int = 16,
    n_logits: int = 10,
    batch_size: int = 32,
    seed: int = 0,
    checkpoint: Path | None = None,
    checkpoint_every: int = 50,
    on_progress: ProgressCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_layer: Callable[[int, list[Feature]], None] | None = None,
) -> dict[int, list[Feature]]:
    """Dashboards of every feature of ``layers`` (default all), one JSON-ready dict per feature
    in circuit-tracer's feature shape (see the module docstring for every field).

    Layers are finished one at a time at the end; with ``on_layer`` each is handed over as it is
    done and not kept (the returned dict is then empty), so memory holds one layer's output.
    Bad options or token ids raise ``ValueError``.
    """
    device = next(model.parameters()).device
    rm = ReplacementModel.from_parts(model, transcoders, tokenizer, device=device)
    chosen = tuple(sorted(set(range(rm.n_layers) if layers is None else layers)))
    if not chosen or chosen[0] < 0 or chosen[-1] >= rm.n_layers:
        raise ValueError(f"layers must be in [0, {rm.n_layers})")
    for name, value in (
        ("top_k", top_k),
        ("n_intervals", n_intervals),
        ("examples_per_interval", examples_per_interval),
        ("histogram_bins", histogram_bins),
        ("n_logits", n_logits),
        ("batch_size", batch_size),
        ("checkpoint_every", checkpoint_every),
    ):
        if value < 1:
            raise ValueError(f"{name} must be >= 1")
    if tokens_before < 0 or tokens_after < 0:
        raise ValueError("tokens_before and tokens_after must be >= 0")
    vocab = rm.unembed_weight.shape[0]

    def report(phase: str, fraction: float) -> None:
        if on_progress is not None:
            on_progress(phase, min(1.0, fraction))

    def stop_requested() -> bool:
        return should_stop is not None and should_stop()

    n_tokens = longest = 0
    for row in _as_rows(corpus, vocab):
        n_tokens += len(row)
        longest = max(longest, len(row))
    if n_tokens == 0:
        raise ValueError("the corpus has no contexts")
    s = _Settings(
        top_k, tokens_before, tokens_after, n_intervals, examples_per_interval, histogram_bins,
        seed, chosen, rm.transcoders.d_transcoder, longest,
    )  # fmt: skip
    states = [_LayerState(s, layer, device) for layer in chosen]
    by_layer = {state.layer: state for state in states}
    settings = json.loads(json.dumps(asdict(s)))  # as a checkpoint's JSON reads back
    meta: dict[str, Any] = {"settings": settings, "rows": 0, "tokens": 0, "counted": 0}
    if checkpoint is not None and checkpoint.is_file():
        meta = _load_checkpoint(checkpoint, states, settings)
    pad = rm.special_token_ids()[0] if rm.special_token_ids() else 0

    def checkpoint_now() -> None:
        if checkpoint is not None:
            _save_checkpoint(checkpoint, states, meta)

    # Phase 1: stream the corpus.
    rows = _as_rows(corpus, vocab)
    for _ in range(meta["rows"]):
        next(rows)
    report("activations", meta["tokens"] / n_tokens)
    for n_batch, batch in enumerate(_batches(rows, batch_size), start=1):
        if stop_requested():
            checkpoint_now()
            raise DashboardsCancelled("dashboards cancelled")
        tokens, lengths = _padded(batch, pad, device)
        positions = torch.arange(tokens.shape[1], device=device)
        valid = (positions[None, :] >= 1) & (positions[None, :] < lengths[:, None])
        whash = _window_hashes(tokens, lengths, tokens_before, tokens_after)
        first_row = meta["rows"]
        _run(
            rm,
            tokens,
            chosen,
            partial(_fold, by_layer, valid, first_row, whash),
        )
        meta["rows"] += len(batch)
        meta["tokens"] += int(lengths.sum())
        meta["counted"] += int(valid.sum())
        report("activations", meta["tokens"] / n_tokens)
        if n_batch % checkpoint_every == 0:
            checkpoint_now()
    checkpoint_now()

    # Phase 2: the examples' windows, from one more forward over the contexts they come from.
    picks = [_picks(state) for state in states]
    windows = _windows(rm, corpus, vocab, s, states, picks, batch_size, pad, report, stop_requested)

    # Phase 3: output tokens, then each layer's JSON.
    names = _TokenNames(rm)
    out: dict[int, list[Feature]] = {}
    for done, (state, pick) in enumerate(zip(states, picks, strict=True)):
        logits = _output_tokens(rm, state.layer, n_logits)
        features = _layer_json(state, pick, windows[state.layer], logits, meta["counted"], names)
        if on_layer is not None:
            on_layer(state.layer, features)
        else:
            out[state.layer] = features
        report("outputs", (done + 1) / len(states))
    if checkpoint is not None:
        checkpoint.unlink(missing_ok=True)
    return out


@dataclass
class _Picks:
    """One layer's chosen examples as flat arrays: feature, pointer, value, group (-1 = top)."""

    feature: torch.Tensor
    ptr: torch.Tensor
    value: torch.Tensor
    group: torch.Tensor
    interval_edges: torch.Tensor  # (F, n_intervals + 1)


def _picks(state: _LayerState) -> _Picks:
    s = state.s
    top_val, top_ptr = state.top_val.cpu(), state.top_ptr.cpu()
    filled = top_ptr >= 0
    feature = torch.arange(s.d_transcoder)[:, None].expand_as(top_ptr)
    parts_f, parts_p, parts_v = [feature[filled]], [top_ptr[filled]], [top_val[filled]]
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
    keys, vals = state.res_key.cpu(), state.res_val.cpu()
    cells = torch.arange(s.cells)
    interval = (bounds[:, None, 1:] <= cells[None, :, None]).sum(-1)  # (F, cells)
    for i in range(s.n_intervals):
        inside = (interval == i)[..., None] & (keys != _EMPTY)
        k = torch.where(inside, keys, _EMPTY).reshape(s.d_transcoder, -1)
        chosen, value = _bottom(k, vals.reshape(s.d_transcoder, -1), s.examples_per_interval)
        ok = chosen != _EMPTY
        parts_f.append(torch.arange(s.d_transcoder)[:, None].expand_as(chosen)[ok])
        parts_p.append(chosen[ok] & ((1 << _PTR_BITS) - 1))
        parts_v.append(value[ok])
        parts_g.append(torch.full((int(ok.sum()),), i, dtype=torch.long))
    return _Picks(
        torch.cat(parts_f), torch.cat(parts_p), torch.cat(parts_v), torch.cat(parts_g), edges
    )


@dataclass
class _Windows:
    tokens: torch.Tensor  # (n, before + 1 + after), -1 outside the context
    values: torch.Tensor  # (n, before + 1 + after)


def _windows(
    rm: ReplacementModel,
    corpus: Iterable[Any],
    vocab: int,
    s: _Settings,
    states: list[_LayerState],
    picks: list[_Picks],
    batch_size: int,
    pad: int,
    report: ProgressCallback,
    stop_requested: Callable[[], bool],
) -> dict[int, _Windows]:
    width = s.tokens_before + 1 + s.tokens_after
    out = {
        st.layer: _Windows(
            torch.full((len(p.ptr), width), -1, dtype=torch.long), torch.zeros((len(p.ptr), width))
        )
        for st, p in zip(states, picks, strict=True)
    }
    needed = torch.unique(torch.cat([p.ptr // s.context for p in picks]))
    if len(needed) == 0:
        report("examples", 1.0)
        return out
    wanted = set(needed.tolist())
    position = {st.layer: i for i, st in enumerate(states)}
    pick_rows = {st.layer: p.ptr // s.context for st, p in zip(states, picks, strict=True)}
    rows = ((i, row) for i, row in enumerate(_as_rows(corpus, vocab)) if i in wanted)
    done = 0
    report("examples", 0.0)
    for batch in _batches(rows, batch_size):
        if stop_requested():
            raise DashboardsCancelled("dashboards cancelled")
        index = torch.tensor([i for i, _ in batch])
        tokens, lengths = _padded([r for _, r in batch], pad, rm.device)

        batch_rows = _BatchRows(index, tokens.cpu(), lengths.cpu())
        take = partial(_take_windows, s, picks, pick_rows, position, out, batch_rows)
        _run(rm, tokens, [st.layer for st in states], take)
        done += len(batch)
        report("examples", done / len(needed))
    return out


@dataclass
class _BatchRows:
    index: torch.Tensor  # (B,) corpus index of each row, ascending
    tokens: torch.Tensor  # (B, T)
    lengths: torch.Tensor  # (B,)


def _take_windows(
    s: _Settings,
    picks: list[_Picks],
    pick_rows: dict[int, torch.Tensor],
    position: dict[int, int],
    out: dict[int, _Windows],
    batch: _BatchRows,
    layer: int,
    acts: torch.Tensor,
) -> None:
    """Copy the windows of this layer's picks that lie in this batch's rows."""
    p, w, row = picks[position[layer]], out[layer], pick_rows[layer]
    lo, hi = int(batch.index[0]), int(batch.index[-1])
    mine = ((row >= lo) & (row <= hi) & torch.isin(row, batch.index)).nonzero().squeeze(1)
    if len(mine) == 0:
        return
    b = torch.searchsorted(batch.index, row[mine])
    offsets = torch.arange(-s.tokens_before, s.tokens_after + 1)
    pos = (p.ptr[mine] % s.context)[:, None] + offsets[None, :]
    inside = (pos >= 1) & (pos < batch.lengths[b][:, None])
    at = pos.clamp(0, batch.tokens.shape[1] - 1)
    rows = b[:, None].expand_as(at)
    values = acts[
        rows.to(acts.device), at.to(acts.device), p.feature[mine][:, None].to(acts.device)
    ]
    w.values[mine] = torch.where(inside, values.float().cpu(), 0.0)
    w.tokens[mine] = torch.where(inside, batch.tokens[rows, at], -1)


def _output_tokens(
    rm: ReplacementModel, layer: int, n_logits: int, chunk: int = 256
) -> tuple[torch.Tensor, ...]:
    """(top ids, top values, bottom ids, bottom values), each (F, n_logits), float32."""
    norm = resolve(rm.model, rm.adapter.final_norm)
    weight = norm.weight
    assert isinstance(weight, torch.Tensor)
    gain = weight.detach().float()
    if rm.adapter.norm_kind == "rms_plus_one":
        gain = 1.0 + gain
    unembed = (rm.unembed_weight.detach().float() * gain).T  # (d_model, vocab)
    special = torch.tensor(rm.special_token_ids(), dtype=torch.long)
    decoder = rm.transcoders.decoders[layer]
    n = min(n_logits, unembed.shape[1] - len(set(special.tolist())))
    parts: list[list[torch.Tensor]] = [[], [], [], []]
    for start in range(0, decoder.d_transcoder, chunk):
        ids = torch.arange(start, min(start + chunk, decoder.d_transcoder))
        direction = decoder.rows(ids, unembed.device, torch.float32).sum(1)  # all output layers
        values = direction @ unembed  # (chunk, vocab)
        top = values.index_fill(1, special.to(values.device), -math.inf).topk(n, 1)
        bottom = values.index_fill(1, special.to(values.device), math.inf).topk(n, 1, largest=False)
        for part, t in zip(
            parts, (top.indices, top.values, bottom.indices, bottom.values), strict=True
        ):
            part.append(t.cpu())
    return tuple(torch.cat(p) for p in parts)


def _r(x: float, digits: int = 5) -> float:
    """``digits`` significant digits: small activations keep their size, files stay small."""
    return float(f"{float(x):.{digits}g}") + 0.0  # + 0.0: no -0.0 in the files


def _layer_json(
    state: _LayerState,
    picks: _Picks,
    windows: _Windows,
    logits: tuple[torch.Tensor, ...],
    counted: int,
    names: _TokenNames,
) -> list[Feature]:
    s = state.s
    n_fire = state.n_fire.cpu().tolist()
    total = state.total.cpu().tolist()
    act_min = state.act_min.cpu().tolist()
    act_max = state.top_val[:, 0].cpu().tolist()
    R = state.R.cpu()
    hist = state.hist.cpu()
    top_ids, top_vals, bottom_ids, bottom_vals = (t.tolist() for t in logits)
    edges = picks.interval_edges.tolist()
    by_feature: dict[int, list[int]] = {}
    for i, f in enumerate(picks.feature.tolist()):
        by_feature.setdefault(f, []).append(i)
    groups, pointers = picks.group.tolist(), picks.ptr.tolist()
    win_tokens, win_values = windows.tokens.tolist(), windows.values.tolist()
    features: list[Feature] = []
    for f in range(s.d_transcoder):
        feature: Feature = {
            "index": f,
            "transcoder_id": f"layer_{state.layer}",
            "examples_quantiles": [],
            "top_logits": [names(t) for t in top_ids[f]],
            "top_logits_values": [_r(v) for v in top_vals[f]],
            "bottom_logits": [names(t) for t in bottom_ids[f]],
            "bottom_logits_values": [_r(v) for v in bottom_vals[f]],
            "act_min": 0.0,
            "act_max": 0.0,
            "act_mean": 0.0,
            "quantile_values": [],
            "quantile_intervals": [],
            "histogram": {"edges": [0.0, 0.0], "counts": [0]},
            "activation_frequency": 0.0,
        }
        features.append(feature)
        if n_fire[f] == 0:
            continue
        feature["act_min"] = float(act_min[f])
        feature["act_max"] = float(act_max[f])
        feature["act_mean"] = total[f] / n_fire[f]
        feature["activation_frequency"] = n_fire[f] / counted
        fine_used = min(s.fine_bins, math.floor(act_max[f] / float(R[f]) * s.fine_bins) + 1)
        width = -(-fine_used // s.histogram_bins)
        counts = hist[f, : width * s.histogram_bins].view(s.histogram_bins, width).sum(1)
        step = float(R[f]) / s.fine_bins * width
        feature["histogram"] = {
            "edges": [step * i for i in range(s.histogram_bins + 1)],
            "counts": counts.tolist(),
        }
        quantiles: list[dict[str, Any]] = [{"quantile_name": "Top activations", "examples": []}]
        quantiles += [
            {"quantile_name": f"Subsample Interval {i}", "examples": []}
            for i in range(s.n_intervals)
        ]
        for i in by_feature.get(f, []):
            quantiles[groups[i] + 1]["examples"].append(
                _example(win_tokens[i], win_values[i], pointers[i], s, names)
            )
        feature["examples_quantiles"] = [q for q in quantiles if q["examples"]]
        feature["quantile_intervals"] = [
            [edges[f][i], edges[f][i + 1]] for i in range(s.n_intervals)
        ]
        feature["quantile_values"] = [edges[f][i] for i in range(s.n_intervals)]
    return features


def _example(
    tokens: list[int], values: list[float], pointer: int, s: _Settings, names: _TokenNames
) -> dict[str, Any]:
    kept = [i for i, t in enumerate(tokens) if t >= 0]
    return {
        "tokens": [names(tokens[i]) for i in kept],
        "tokens_acts_list": [_r(values[i], 4) for i in kept],
        "train_token_ind": kept.index(s.tokens_before),
        "is_repeated_datapoint": False,
        # Where the activating token is: context index in corpus order, position in it.
        "corpus_context": pointer // s.context,
        "corpus_position": pointer % s.context,
    }


def write_layer(path: Path, features: list[Feature]) -> None:
    """One layer's dashboards as ``layer_{i}.jsonl.gz`` (line n = feature n), the file
    ``import_features`` reads; mtime 0 and no name in the gzip header, so equal features give
    equal bytes. Written to a temporary name and renamed, so a reader never sees half a layer."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with (
        open(partial, "wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as out,
    ):
        for feature in features:
            line = json.dumps(feature, separators=(",", ":"), ensure_ascii=False) + "\n"
            out.write(line.encode())
    partial.replace(path)


def read_layer(path: Path) -> list[Feature]:
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        return [json.loads(line) for line in lines]
