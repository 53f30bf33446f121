"""Rows of the adjacency: direct effects on a batch of targets, from one batched backward pass.

`RowComputer` holds what the rows are contracted with, computed once from the linearised forward
pass (replacement.py): every active feature's scaled decoder vectors (``a * W_dec``, padded per
position as `DecoderBlock`, held or built per batch), the error vectors and the token
embeddings. ``rows(layers, positions, vectors)`` seeds each target's direction at its layer and
position, runs one batched backward pass (backward.py) and contracts the gradients with those
sources.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .backward import LinearisedBackward
from .replacement import LinearisedForward, ReplacementModel
from .transcoders import DecoderRows


def _dot_per_position(g: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
    """(B, P): each row's gradient at each position (B, P, d) dotted with that position's one
    source vector (P, d). A product and a sum over d: einsum makes this a batched GEMM with one
    output column, 5x slower on the CPU (0.64 against 0.12 ms at 64 rows, 17 positions, d 640)."""
    return (g * vectors).sum(-1)


def by_layer(idx: torch.Tensor, layers: torch.Tensor) -> torch.Tensor:
    """`idx` reordered so its rows' `layers` run highest first, as `RowComputer.rows` wants."""
    return idx[torch.argsort(layers[idx], descending=True, stable=True)]


def visit_order(pending: torch.Tensor, features: torch.Tensor, batch_size: int) -> torch.Tensor:
    """The order a ranking's pending rows are computed in: every one is computed before the
    next ranking, so it is free. By position, each batch's backward pass spans fewer positions;
    each batch of `batch_size` is then sorted by layer (`by_layer`). `features` are the active
    features' (layer, position, id)."""
    pending = pending[torch.argsort(features[pending, 1], stable=True)]
    batches = [by_layer(pending[c : c + batch_size], features[:, 0]) for c in
               range(0, len(pending), batch_size)]  # fmt: skip
    return torch.cat(batches) if batches else pending


@dataclass
class DecoderBlock:
    """The scaled decoder rows of one source layer's features, padded per position.

    ``padded(o, p)[q, slot]`` is ``a * W_dec`` (into output layer src + o) of the feature in that
    slot at position q < p, so contracting with gradients is a batched GEMM over positions
    instead of a gather of (batch, features, d_model) blocks. A held block keeps every output
    layer's rows for every position (``held``); otherwise each call builds the one (p, width,
    d_model) slice it is asked for from the decoder (memory-mapped or on the device) and the
    activations, the same products in the same dtype, so the rows are the same (docs/engine.md,
    "Memory": on a long prompt the held blocks of every layer are the largest thing on the GPU).
    """

    start: int  # column of the layer's first feature
    pos: torch.Tensor  # (k,) position of each feature, sorted
    slot: torch.Tensor  # (k,) its slot among the features at that position
    width: int  # the most features at one position
    feat: torch.Tensor  # (k,) feature ids, on the CPU
    vals: torch.Tensor  # (k,) activations, float32 on the device
    decoder: DecoderRows
    dtype: torch.dtype  # the model's: contractions run in it
    held: torch.Tensor | None  # (n_out_layers, n_pos, width, d_model), or None

    @classmethod
    def build(
        cls,
        start: int,
        pos: torch.Tensor,
        feat: torch.Tensor,
        vals: torch.Tensor,
        decoder: DecoderRows,
        dtype: torch.dtype,
        scaled: torch.Tensor | None,
        n_pos: int,
    ) -> DecoderBlock:
        """`scaled` (k, n_out_layers, d) float32 is held, padded, when given."""
        counts = torch.bincount(pos, minlength=n_pos)
        first = torch.cumsum(counts, 0) - counts  # features are sorted by position
        slot = torch.arange(len(pos), device=pos.device) - first[pos]
        width = int(counts.max()) if len(pos) else 0
        block = cls(start, pos, slot, width, feat.cpu(), vals, decoder, dtype, None)
        if scaled is not None:
            block.held = block._padded(scaled.transpose(0, 1).to(dtype), n_pos, len(pos))
        return block

    def _padded(self, scaled: torch.Tensor, p: int, k: int) -> torch.Tensor:
        """(..., p, width, d) from `scaled` (..., k, d), the first k features (those before p)."""
        padded = scaled.new_zeros(*scaled.shape[:-2], p, self.width, scaled.shape[-1])
        padded[..., self.pos[:k], self.slot[:k], :] = scaled
        return padded

    def padded(self, out: int, p: int, k: int) -> torch.Tensor:
        """(p, width, d) the rows into output layer src + `out` of the features at positions
        before p, which are the first k."""
        if self.held is not None:
            return self.held[out, :p]
        rows = self.decoder.rows(self.feat[:k], self.vals.device, torch.float32, out_layer=out)
        # in place: a fresh copy of the rows (a gather), one (k, d) float32 block fewer
        return self._padded(rows.mul_(self.vals[:k, None]).to(self.dtype), p, k)


class RowComputer:
    """Contracts batched gradients with every source vector: one row per target."""

    def __init__(
        self,
        rm: ReplacementModel,
        trace: LinearisedForward,
        zero_positions: int = 1,
        hold_decoder_blocks: bool = True,
    ):
        tc = rm.transcoders
        self.backward = LinearisedBackward(rm, trace)
        self.n_layers = rm.n_layers
        self.cross_layer = tc.cross_layer
        device = rm.device
        n_pos = trace.feature_inputs[0].shape[1]
        self.n_pos = n_pos

        features, values, blocks = [], [], []
        start = 0
        reconstruction = [tc.b_dec[j].float().expand(n_pos, -1).clone() for j in range(rm.n_layers)]
        for layer in range(rm.n_layers):
            x_in = trace.feature_inputs[layer].detach()[0]
            acts = tc.encode(layer, x_in).float()
            acts[:zero_positions] = 0  # the special first token is not explained
            pos, feat = acts.nonzero(as_tuple=True)
            vals = acts[pos, feat]
            scaled = (
                tc.decoders[layer].rows(feat.cpu(), device, torch.float32) * vals[:, None, None]
            )
            for offset in range(scaled.shape[1]):
                reconstruction[layer + offset].index_add_(0, pos, scaled[:, offset])
            features.append(torch.stack([torch.full_like(pos, layer), pos, feat], 1))
            values.append(vals)
            # Held in the model's dtype: on a bf16 model of a long prompt these blocks are the
            # largest thing on the GPU (2,000 tokens x 26 layers x 64 features: ~22 GB in bf16);
            # the planner says when they do not fit and are built per batch instead.
            held = scaled if hold_decoder_blocks else None
            dtype = trace.outputs[0].dtype
            blocks.append(
                DecoderBlock.build(start, pos, feat, vals, tc.decoders[layer], dtype, held, n_pos)
            )
            start += len(pos)
            del scaled
        self.active_features = torch.cat(features).cpu()
        self.activation_values = torch.cat(values).cpu()
        self._features = torch.cat(features)  # on the device, for encoder_rows
        self._W_enc = tc.W_enc
        self.blocks = blocks
        self.n_active = start
        errors = []
        for layer in range(rm.n_layers):
            skip_w = tc.skip[layer]
            recon_l = reconstruction[layer]
            if skip_w is not None:
                recon_l = recon_l + (trace.feature_inputs[layer].detach()[0] @ skip_w).float()
            err = trace.outputs[layer].float() - recon_l
            err[:zero_positions] = 0
            errors.append(err)
        self.errors = errors
        assert trace.embed_leaf is not None
        self.token_vectors = trace.embed_leaf.detach()[0].float()
        self.error_offset = self.n_active
        self.token_offset = self.n_active + rm.n_layers * n_pos
        self.n_cols = self.token_offset + n_pos

    def encoder_rows(self, idx: torch.Tensor) -> torch.Tensor:
        """(B, d) the W_enc rows of active features ``idx``, gathered per batch: all of them at
        once would be n_active x d_model (15 GB for 2,000 tokens of a Gemma-2-2B-sized set)."""
        layers, features = self._features[idx, 0], self._features[idx, 2]
        out = torch.empty(len(idx), self._W_enc[0].shape[1], dtype=self._W_enc[0].dtype,
                          device=self._features.device)  # fmt: skip
        for layer in layers.unique().tolist():
            where = (layers == layer).nonzero().squeeze(1)
            out[where] = self._W_enc[layer][features[where]]
        return out

    def decoder_writes(self, idx: torch.Tensor) -> torch.Tensor:
        """(B, n_out, d) float32: what active features ``idx`` write into each output layer
        from their own on (``a * W_dec``, zero past a feature's last output layer), for the
        column pass (columns.py); n_out is 1 for per-layer transcoders."""
        layers, features = self._features[idx, 0], self._features[idx, 2]
        vals = self.activation_values[idx.cpu()].to(self._features.device)
        n_out = self.blocks[0].decoder.n_out_layers
        out = torch.zeros(len(idx), n_out, self._W_enc[0].shape[1], device=self._features.device)
        for layer in layers.unique().tolist():
            where = (layers == layer).nonzero().squeeze(1)
            decoder = self.blocks[layer].decoder
            rows = decoder.rows(features[where], out.device, torch.float32)
            out[where, : decoder.n_out_layers] = rows.view(len(where), -1, out.shape[2])
        return out.mul_(vals[:, None, None])

    def rows(
        self, layers: torch.Tensor, positions: torch.Tensor, vectors: torch.Tensor
    ) -> torch.Tensor:
        """(B, n_cols) direct effects on targets at (layer, pos) along `vectors` (B, d_model),
        the rows sorted by layer, highest first (`by_layer`).

        Layer ``n_layers`` means the final normalised residual (logit targets). The backward
        pass (backward.py) covers only the positions up to the batch's last target position P
        and, for each row, the blocks below its layer: sources at P and after, and at or above
        a row's layer, have no effect on it and their columns stay 0.
        """
        batch = len(layers)
        device = self.token_vectors.device
        row = torch.zeros(batch, self.n_cols, dtype=torch.float32, device=device)
        n = self.n_pos

        def on_leaf(j: int, g_leaf: torch.Tensor) -> None:
            g = g_leaf.float()  # (k, p, d): gradient at layer j's output hook, the first k rows
            k, p = g.shape[0], g.shape[1]
            err_start = self.error_offset + j * n
            row[:k, err_start : err_start + p] = _dot_per_position(g, self.errors[j][:p])
            for i in range(0 if self.cross_layer else j, j + 1):
                self._add_feature_effects(row[:k], g, i, j)

        g_embed = self.backward.run(layers, positions, vectors, on_leaf).float()
        p = g_embed.shape[1]
        row[:, self.token_offset : self.token_offset + p] = _dot_per_position(
            g_embed, self.token_vectors[:p]
        )
        return row

    def _add_feature_effects(self, row: torch.Tensor, g: torch.Tensor, src: int, dst: int) -> None:
        block = self.blocks[src]
        p = g.shape[1]
        # Features are sorted by position: those before p come first.
        k = len(block.pos) if p == self.n_pos else int(torch.searchsorted(block.pos, p))
        if k == 0:
            return
        # One GEMM per position: (B, d) grads x (d, k_pos) decoders, batched over positions, in
        # the model's dtype (float32 for a float32 model).
        padded = block.padded(dst - src, p, k)
        out = torch.bmm(g.transpose(0, 1).to(padded.dtype), padded.transpose(1, 2))
        row[:, block.start : block.start + k] += out[block.pos[:k], :, block.slot[:k]].T.float()
