"""The model side of the dashboards: every chosen layer encoded from one forward pass, the corpus
read and batched, the examples' windows copied out of a forward, and each feature's output tokens
through the unembedding.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import nn

from .adapters import resolve
from .dashboard_stats import _Firing, _Picks, _Settings
from .freezing import first_tensor_arg, norm_eps, norm_scale, normalized
from .replacement import ReplacementModel
from .transcoders import TopK, Transcoders

_T = TypeVar("_T")


# ---------------------------------------------------------------------------------------------
# Forward pass: every chosen layer's transcoder input from one forward


class _Enough(Exception):
    """Raised by the last layer's hook: nothing after it is needed."""


def _dense(transcoders: Transcoders, layer: int, x: torch.Tensor) -> torch.Tensor:
    """(B, T, d_model) transcoder input -> (B, T, F) activations."""
    return transcoders.encode(layer, x.reshape(-1, x.shape[-1])).reshape(*x.shape[:-1], -1)


# Rows of a TopK encode done at once: their (rows, F) pre-activations stay in the CPU's cache
# between the matmul that writes them and the top-k that reads them (256 x 2,048 floats is
# 2 MiB; the demo pack's whole batch, 32 MiB, went to memory and back: 1.6x slower there).
_ENCODE_ROWS = 256


def _topk_kept(
    transcoders: Transcoders, layer: int, activation: TopK, flat: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """A TopK layer's k kept features of each (n, d_model) input row, by value descending (in no
    order of feature: nothing downstream needs one, and sorting them cost 1 ms a layer and
    batch), and their activations (the pre-activations `Transcoders.encode` keeps, bit for
    bit: each row's products and bias are the same operations), each (n, k)."""
    w, bias = transcoders.W_enc[layer], transcoders.b_enc[layer]
    flat = flat.to(w.dtype)
    values = torch.empty((len(flat), activation.k), dtype=w.dtype, device=flat.device)
    index = torch.empty((len(flat), activation.k), dtype=torch.long, device=flat.device)
    for start in range(0, len(flat), _ENCODE_ROWS):
        rows = slice(start, start + _ENCODE_ROWS)
        pre = torch.addmm(bias, flat[rows], w.T)
        torch.topk(pre, k=activation.k, dim=-1, out=(values[rows], index[rows]))
    return index, values


def _firing(transcoders: Transcoders, layer: int, x: torch.Tensor) -> _Firing:
    """Where each feature fires (activation > 0) in a (B, T, d_model) input, in corpus order
    (token by token; within a token in no fixed order of feature), and the activations to read
    windows from. A TopK set's k kept features per token are taken straight from its top-k (the
    same values `Transcoders.encode` keeps), without the dense (B, T, F) tensor and a scan of
    it."""
    t = x.shape[1]
    flat = x.reshape(-1, x.shape[-1])
    activation = transcoders.activations[layer]
    acts: _DenseActs | _Kept
    if isinstance(activation, TopK):
        index, values = _topk_kept(transcoders, layer, activation, flat)
        fires = values > 0
        pos = fires.nonzero()[:, 0]
        f, v = index.masked_select(fires), values.masked_select(fires)  # 3x faster than [pos, slot]
        acts = _Kept(index, values, t)
    else:
        dense = transcoders.encode(layer, flat)
        pos, f = (dense > 0).nonzero(as_tuple=True)
        v = dense[pos, f]
        acts = _DenseActs(dense.reshape(*x.shape[:-1], -1))
    return _Firing(pos // t, pos % t, f, v.float(), acts)


def _offsets(before: int, after: int, device: torch.device) -> torch.Tensor:
    return torch.arange(-before, after + 1, device=device)


@dataclass
class _DenseActs:
    """A batch's (B, T, F) activations."""

    acts: torch.Tensor

    def windows(
        self, row: torch.Tensor, pos: torch.Tensor, feature: torch.Tensor, before: int, after: int
    ) -> torch.Tensor:
        """(n, before + 1 + after) activations of ``feature`` around ``pos`` in ``row`` (n,);
        positions outside the row are clamped to it (the caller masks them)."""
        at = pos[:, None] + _offsets(before, after, pos.device)[None, :]
        at = at.clamp(0, self.acts.shape[1] - 1).to(self.acts.device)
        return self.acts[row.to(self.acts.device)[:, None], at, feature.to(at.device)[:, None]]


class _Kept:
    """A TopK layer's activations over a (B, T) batch held sparsely: each token's k kept
    features and their values (B * T, k); every other activation is 0, as in
    `Transcoders.encode`'s dense output."""

    def __init__(self, index: torch.Tensor, value: torch.Tensor, t: int) -> None:
        self.index, self.value, self.t = index, value, t
        self._by_feature: tuple[torch.Tensor, torch.Tensor] | None = None

    def windows(
        self, row: torch.Tensor, pos: torch.Tensor, feature: torch.Tensor, before: int, after: int
    ) -> torch.Tensor:
        """As `_DenseActs.windows` (0 outside the row): the kept entries ordered by (feature,
        token) once, each window is one run of them, found by two binary searches; reading
        all 65 entries of each window one by one cost 4-20x more."""
        device = self.index.device
        row, pos, feature = row.to(device), pos.to(device), feature.to(device)
        n_tokens = len(self.index)
        if self._by_feature is None:  # key (feature, token), token = row * T + position
            tokens = torch.arange(n_tokens, device=device)[:, None].expand_as(self.index)
            key = (self.index * n_tokens + tokens).reshape(-1)
            # Sorted as int32 where the keys fit (2.5x faster than int64), searched as int64.
            narrow = len(key) > 0 and int(key.max()) < 2**31
            order = (key.int() if narrow else key).sort().indices
            self._by_feature = key[order], self.value.reshape(-1)[order]
        key, value = self._by_feature
        base = feature * n_tokens + row * self.t
        first = base + (pos - before).clamp(min=0)
        last = base + (pos + after).clamp(max=self.t - 1)
        lo = torch.searchsorted(key, first)
        count = torch.searchsorted(key, last, right=True) - lo
        entry = torch.repeat_interleave(torch.arange(len(row), device=device), count)
        start = torch.cumsum(count, 0) - count
        found = torch.arange(len(entry), device=device) - start[entry] + lo[entry]
        column = key[found] - base[entry] - pos[entry] + before
        out = torch.zeros((len(row), before + 1 + after), dtype=self.value.dtype, device=device)
        out[entry, column] = value[found]
        return out


def _lookup(transcoders: Transcoders, layer: int, x: torch.Tensor) -> _DenseActs | _Kept:
    """A (B, T, d_model) input's activations to read the examples' windows from: a TopK set's
    kept ones sparsely, skipping the dense (B, T, F) tensor; others dense."""
    activation = transcoders.activations[layer]
    if not isinstance(activation, TopK):
        return _DenseActs(_dense(transcoders, layer, x))
    flat = x.reshape(-1, x.shape[-1])
    index, values = _topk_kept(transcoders, layer, activation, flat)
    return _Kept(index, values, x.shape[1])


@contextmanager
def _encoding(
    rm: ReplacementModel,
    layers: Sequence[int],
    on_acts: Callable[[int, Any], None],
    encode: Callable[[Transcoders, int, torch.Tensor], Any] = _dense,
) -> Iterator[None]:
    """Hooks that hand (layer, ``encode(transcoders, layer, input (B, T, d_model))``) to
    ``on_acts`` for each chosen layer; the forward stops after the last chosen layer. Always
    removed on exit."""
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
            on_acts(layer, encode(rm.transcoders, layer, x))
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
    on_acts: Callable[[int, Any], None],
    encode: Callable[[Transcoders, int, torch.Tensor], Any] = _dense,
) -> None:
    with torch.no_grad(), _encoding(rm, layers, on_acts, encode), suppress(_Enough):
        rm.model(input_ids=tokens, use_cache=False)


class _TokenNames:
    def __init__(self, rm: ReplacementModel) -> None:
        self.rm = rm
        self.cache: dict[int, str] = {}

    def __call__(self, token: int) -> str:
        if token not in self.cache:
            self.cache[token] = self.rm.decode_token(token)
        return self.cache[token]


@dataclass
class _BatchRows:
    index: torch.Tensor  # (B,) corpus index of each row, ascending
    lengths: torch.Tensor  # (B,)


def _take_windows(
    s: _Settings,
    picks: list[_Picks],
    pick_rows: dict[int, torch.Tensor],
    position: dict[int, int],
    out: dict[int, torch.Tensor],
    batch: _BatchRows,
    layer: int,
    acts: _DenseActs | _Kept,
) -> None:
    """Copy the window activations of this layer's picks that lie in this batch's rows into
    ``out[layer]`` (their tokens are read from the corpus's ids when the layer's JSON is built)."""
    p, values_out, row = picks[position[layer]], out[layer], pick_rows[layer]
    lo, hi = int(batch.index[0]), int(batch.index[-1])
    mine = ((row >= lo) & (row <= hi) & torch.isin(row, batch.index)).nonzero().squeeze(1)
    if len(mine) == 0:
        return
    b = torch.searchsorted(batch.index, row[mine])
    centre = p.ptr[mine] % s.context
    pos = centre[:, None] + _offsets(s.tokens_before, s.tokens_after, centre.device)[None, :]
    inside = (pos >= 1) & (pos < batch.lengths[b][:, None])
    values = acts.windows(b, centre, p.feature[mine], s.tokens_before, s.tokens_after)
    values_out[mine] = torch.where(inside, values.float().cpu(), 0.0)


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
