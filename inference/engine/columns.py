"""Columns of the adjacency: one source feature's direct effects on every target, forward.

A row of the adjacency is one backward pass from a target (backward.py, rows.py). Its transpose,
a column, is one forward pass from a source through the same frozen linear model: the feature's
write ``a * W_dec`` into its output layers' leaves, carried up the residual stream by the frozen
attention's value path (values, patterns, output projection and norm scales, the blocks the
backward pass folded) and by the skip connections, and read at each target's layer and position
by its direction. The sparse ranking (sparse_ranking.py) needs the columns of the features it
visits and of those near its cut, over rows whose entries it did not keep.

Causal attention makes this pass cover only the positions from the batch's first source on: no
position before it sees a change, so the patterns are sliced to that suffix, as the backward
pass slices them to a prefix. A source joins the pass at its own layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .backward import LinearisedBackward, _Block
from .rows import RowComputer


@dataclass(frozen=True)
class Targets:
    """The rows a column pass reads: layer (``n_layers``: a logit), position and direction."""

    layers: torch.Tensor  # (R,) on the CPU
    positions: torch.Tensor  # (R,) on the CPU
    vectors: torch.Tensor  # (R, d) on the model's device


class ColumnPass:
    """Columns of a `RowComputer`'s sources, through its backward pass's frozen blocks."""

    def __init__(self, computer: RowComputer):
        self.computer = computer
        self.backward: LinearisedBackward = computer.backward

    def columns(self, idx: torch.Tensor, targets: Targets) -> torch.Tensor:
        """(R, B) float32: the effects of active features `idx` (B,) on `targets`' rows, the
        entries those rows have at the features' columns (float tolerance: another GEMM order)."""
        computer, backward = self.computer, self.backward
        feats = computer.active_features[idx.cpu()]
        order = torch.argsort(feats[:, 0], stable=True)  # lowest layer first: a leading slice
        layers, positions = feats[order, 0], feats[order, 1]
        writes = computer.decoder_writes(idx.cpu()[order])
        block0 = backward.blocks[0]
        dtype, device = block0.w_o.dtype, block0.w_o.device
        n_pos, n_layers, d = computer.n_pos, backward.n_layers, backward.d_model
        first = int(positions.min())
        span = n_pos - first
        batch = len(idx)
        delta = torch.zeros(batch, span, d, dtype=dtype, device=device)
        out = torch.zeros(len(targets.layers), batch, device=device)
        reach = targets.positions >= first
        src_at = (positions - first).to(device)
        for j in range(int(layers[0]), n_layers):
            block = backward.blocks[j]
            k = int((layers < j).sum())  # sources below block j: they have reached it
            if k:
                delta[:k] += self._attention(block, delta[:k], first)
                rows = ((targets.layers == j) & reach).nonzero().squeeze(1)
                if len(rows):
                    at = targets.positions[rows]
                    x = delta[:k, (at - first).to(device)]  # (k, m, d)
                    if block.to_input is not None:
                        x = block.to_input.forward(x, block.to_input.scale[at.to(device)])
                    vec = targets.vectors[rows.to(device)].float()
                    out[rows.to(device), :k] = torch.einsum("kmd,md->mk", x.float(), vec)
            k_out = int((layers <= j).sum())
            leaf = torch.zeros(k_out, span, d, dtype=dtype, device=device)
            if k and block.skip is not None:
                x_in = delta[:k]
                if block.to_input is not None:
                    x_in = block.to_input.forward(x_in, block.to_input.scale[first:])
                leaf[:k] = (x_in.reshape(-1, d) @ block.skip.to(dtype)).view(k, span, d)
            offset = j - layers[:k_out]
            writing = (offset < writes.shape[1]).nonzero().squeeze(1)
            if len(writing):
                w = writes[writing.to(device), offset[writing].to(device)].to(dtype)
                wd = writing.to(device)
                leaf[wd, src_at[wd]] += w
            if block.to_leaf is not None:
                leaf = block.to_leaf.forward(leaf, block.to_leaf.scale[first:])
            delta[:k_out] += leaf
        rows = ((targets.layers == n_layers) & reach).nonzero().squeeze(1)
        if len(rows):
            at = targets.positions[rows]
            final = backward.final
            x = final.forward(delta[:, (at - first).to(device)], final.scale[at.to(device)])
            vec = targets.vectors[rows.to(device)].float()
            out[rows.to(device)] = torch.einsum("kmd,md->mk", x.float(), vec)
        unsorted = torch.empty_like(out)
        unsorted[:, order.to(device)] = out
        return unsorted

    @staticmethod
    def _attention(block: _Block, x: torch.Tensor, first: int) -> torch.Tensor:
        """(k, S, d): what the frozen attention of `block` adds to the residual for a
        perturbation `x` (k, S, d) of its input at positions ``first`` on."""
        k, s, d = x.shape
        n_heads, head_dim, group = LinearisedBackward._heads(block)
        # (source, heads x target) over the suffix; target q reads sources q' <= q, all of them
        # at or after `first` where x is not 0
        pattern_t = block.pattern_t[first:, :, first:]
        z = torch.empty(n_heads, s, k, head_dim, dtype=x.dtype, device=x.device)
        for kv in range(n_heads // group):
            w_v = block.w_v[kv * head_dim : (kv + 1) * head_dim]
            # (source position, rows x head_dim): this group's values
            values = (x.reshape(k * s, d) @ w_v.T).view(k, s, head_dim)
            values = values.transpose(0, 1).reshape(s, k * head_dim)
            heads = slice(kv * group, (kv + 1) * group)
            mixed = pattern_t[:, heads].reshape(s, group * s).T @ values  # (group x target, ..)
            z[heads] = mixed.view(group, s, k, head_dim)
        z_rows = z.permute(2, 1, 0, 3).reshape(k * s, n_heads * head_dim)
        return (z_rows @ block.w_o.T).view(k, s, d)
