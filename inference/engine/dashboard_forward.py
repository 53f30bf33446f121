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


def _topk_kept(
    transcoders: Transcoders, layer: int, activation: TopK, flat: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """A TopK layer's k kept features of each (n, d_model) input row, ascending, and their
    activations (the pre-activations `Transcoders.encode` keeps), each (n, k)."""
    w = transcoders.W_enc[layer]
    pre = flat.to(w.dtype) @ w.T + transcoders.b_enc[layer]
    values, index = torch.topk(pre, k=activation.k, dim=-1)
    index, order = index.sort(-1)
    return index, values.gather(-1, order)


def _firing(transcoders: Transcoders, layer: int, x: torch.Tensor) -> _Firing:
    """Where each feature fires (activation > 0) in a (B, T, d_model) input, in corpus order,
    and the activations to read windows from. A TopK set's k kept features per token are taken
    straight from its top-k (the same values `Transcoders.encode` keeps), without the dense
    (B, T, F) tensor and a scan of it."""
    t = x.shape[1]
    flat = x.reshape(-1, x.shape[-1])
    activation = transcoders.activations[layer]
    acts: torch.Tensor | _Kept
    if isinstance(activation, TopK):
        index, values = _topk_kept(transcoders, layer, activation, flat)
        pos, slot = (values > 0).nonzero(as_tuple=True)
        f, v = index[pos, slot], values[pos, slot]
        acts = _kept(index, values, t, transcoders.d_transcoder)
    else:
        dense = transcoders.encode(layer, flat)
        pos, f = (dense > 0).nonzero(as_tuple=True)
        v = dense[pos, f]
        acts = dense.reshape(*x.shape[:-1], -1)
    return _Firing(pos // t, pos % t, f, v.float(), acts)


@dataclass
class _Kept:
    """A TopK layer's activations over a (B, T) batch held sparsely: the kept (row, position,
    feature) as ascending keys ``(row * T + position) * F + feature`` and their values; every
    other activation is 0, as in `Transcoders.encode`'s dense output."""

    key: torch.Tensor
    value: torch.Tensor
    t: int
    f: int
    size: int  # B * T * F, the dense tensor's

    @property
    def device(self) -> torch.device:
        return self.key.device

    def __getitem__(self, at: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
        row, pos, feature = at
        want = (row * self.t + pos) * self.f + feature
        if 64 * want.numel() >= self.size:  # this many reads: scattering once is cheaper
            dense = torch.zeros(self.size, dtype=self.value.dtype, device=self.device)
            return dense.index_put_((self.key,), self.value)[want]
        i = torch.searchsorted(self.key, want).clamp(max=len(self.key) - 1)
        return torch.where(self.key[i] == want, self.value[i], torch.zeros_like(self.value[i]))


def _lookup(transcoders: Transcoders, layer: int, x: torch.Tensor) -> torch.Tensor | _Kept:
    """A (B, T, d_model) input's activations to read single entries of (the examples' windows):
    a TopK set's kept ones sparsely, skipping the dense (B, T, F) tensor; others dense."""
    activation = transcoders.activations[layer]
    if not isinstance(activation, TopK):
        return _dense(transcoders, layer, x)
    flat = x.reshape(-1, x.shape[-1])
    index, values = _topk_kept(transcoders, layer, activation, flat)
    return _kept(index, values, x.shape[1], transcoders.d_transcoder)


def _kept(index: torch.Tensor, values: torch.Tensor, t: int, f: int) -> _Kept:
    """`_Kept` of the (B * T, k) ascending kept features and their values."""
    rows = torch.arange(len(index), device=index.device)[:, None]
    return _Kept((rows * f + index).reshape(-1), values.reshape(-1), t, f, len(index) * f)


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


@dataclass
class _Windows:
    tokens: torch.Tensor  # (n, before + 1 + after), -1 outside the context
    values: torch.Tensor  # (n, before + 1 + after)


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
    acts: torch.Tensor | _Kept,
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
