"""The linearised model's backward pass, written out by hand for a batch of target rows.

With attention patterns and norm denominators frozen and each MLP replaced by a leaf
(replacement.py), every block is a fixed linear map of the residual stream, and the gradient of
a target at every output hook is that map's transpose applied block by block, top down:

- through a block's MLP side: the gradient at the residual after block l is the gradient at its
  output-hook leaf (through Gemma's post-feedforward norm when the hook is before it), and a
  skip connection ``x_in @ W_skip`` sends ``g W_skip^T`` back to the transcoder input;
- through its attention: only the values carry gradient, so it is ``W_o``, each head's pattern
  transposed, ``W_v`` and the frozen norms' constant factors.

Autograd did the same through one recorded forward pass with ``is_grads_batched``; writing it
out lets the pass do less and lay its GEMMs out well (profile of 2026-12-01 in docs/engine.md):

- rows are sorted by layer, highest first, and a row joins the pass at its own layer, so the
  rows inside block j are always a leading slice of the batch and no row crosses a block it
  cannot reach;
- the pass covers only positions up to the batch's last target position: with causal attention
  no position before P reads one after it, so the frozen patterns and norm scales sliced to the
  first P positions are exactly the prefix's (no second forward pass);
- the heads of a grouped-query group go through their patterns as one GEMM (the heads' transposed
  patterns side by side, times the heads' gradients stacked), batched over every row at once,
  with no expanded copy of the shared values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .adapters import NormKind, resolve
from .replacement import LinearisedForward, ReplacementModel

# (block, gradient at its output-hook leaf (k, P, d) for the batch's first k rows)
LeafCallback = Callable[[int, torch.Tensor], None]


@dataclass(frozen=True)
class _Norm:
    """A frozen norm's transpose: its constant per-position scale and its gain (None when the
    hook point sits before the gain, as ``ln2.hook_normalized`` does)."""

    kind: NormKind
    scale: torch.Tensor  # (n_pos, 1) float32
    gain: torch.Tensor | None  # (d,) float32

    def backward(self, g: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """`g` (..., d) times the norm's Jacobian, `scale` (the rows of ``self.scale`` that
        match g's positions) broadcast against it; in g's dtype."""
        if self.kind == "layernorm":
            gw = g.float() if self.gain is None else g.float() * self.gain
            return ((gw - gw.mean(-1, keepdim=True)) * scale).to(g.dtype)
        factor = scale if self.gain is None else scale * self.gain
        return (g.float() * factor).to(g.dtype)

    def forward(self, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """The norm's Jacobian applied to a perturbation `x` (..., d), the transpose of
        `backward` (the column pass, columns.py); in x's dtype."""
        x32 = x.float()
        if self.kind == "layernorm":
            x32 = x32 - x32.mean(-1, keepdim=True)
        x32 = x32 * scale if self.gain is None else x32 * (scale * self.gain)
        return x32.to(x.dtype)

    def fold_after(self, w: torch.Tensor) -> torch.Tensor:
        """(out, d) weight `w` of a projection read by this norm's output, times the norm's
        Jacobian on the right except the per-position scale: ``w diag(gain)`` (then centred
        over d for a layernorm), so the projection's backward applies the gain itself."""
        w = w.float() if self.gain is None else w.float() * self.gain
        return w - w.mean(1, keepdim=True) if self.kind == "layernorm" else w

    def fold_before(self, w: torch.Tensor) -> torch.Tensor:
        """(d, in) weight `w` of a projection whose output this norm reads, times the norm's
        Jacobian on the left except the per-position scale: ``diag(gain) C w``."""
        w = w.float()
        if self.kind == "layernorm":
            w = w - w.mean(0, keepdim=True)
        return w if self.gain is None else w * self.gain[:, None]


@dataclass(frozen=True)
class _Block:
    # The attention's value path with its norms folded in: the gains and centring into the
    # weights, the per-position scales into the pattern (a scale at target position q and one
    # at source position q' are a factor of the pattern's entry (q, q')); so the attention's
    # backward pass is three GEMMs and no elementwise pass over the batch.
    pattern_t: torch.Tensor  # (n_pos source, heads, n_pos target): the patterns transposed
    w_v: torch.Tensor  # (kv_heads x head_dim, d), the input norm folded in
    w_o: torch.Tensor  # (d, heads x head_dim), the output norm (Gemma's) folded in
    to_input: _Norm | None  # from the transcoder input back to the residual (None: it is it)
    to_leaf: _Norm | None  # from the residual after the block to the output-hook leaf
    skip: torch.Tensor | None  # (d, d) W_skip, x_in @ W_skip


def _gain(module: torch.nn.Module, kind: NormKind) -> torch.Tensor:
    weight = module.weight
    assert isinstance(weight, torch.Tensor)
    return 1.0 + weight.float() if kind == "rms_plus_one" else weight.float()


_RELEASED = torch.empty(0)  # a trace's pattern once folded into a backward pass


class LinearisedBackward:
    """The transpose of the linearised model of one forward pass (`run_linearised`). It takes
    the trace's attention patterns: each is released from the trace as it is folded."""

    def __init__(self, rm: ReplacementModel, trace: LinearisedForward):
        adapter, tc, kind = rm.adapter, rm.transcoders, rm.adapter.norm_kind
        in_path, in_kind = adapter.hook(tc.feature_input_hook)
        out_path, _ = adapter.hook(tc.feature_output_hook)
        if len(trace.patterns) != rm.n_layers:
            raise RuntimeError("the forward pass did not record every layer's attention pattern")
        if any(p is _RELEASED for p in trace.patterns):
            raise RuntimeError("this forward pass's patterns were taken by another backward pass")

        def norm(layer: int, path: str, module: torch.nn.Module, gain: bool = True) -> _Norm:
            scale = trace.norm_scales[(layer, path)]
            return _Norm(kind, scale, _gain(module, kind) if gain else None)

        self.blocks: list[_Block] = []
        for layer, block in enumerate(rm.blocks):
            ln2 = resolve(block, adapter.ln2)
            to_input = None
            if in_kind != "input" or in_path != adapter.ln2:  # hook_resid_mid reads h itself
                to_input = norm(layer, adapter.ln2, ln2, gain=in_kind != "normalized")
            to_leaf = None
            if adapter.mlp_out_norm is not None and out_path != adapter.mlp_out_norm:
                to_leaf = norm(layer, adapter.mlp_out_norm, resolve(block, adapter.mlp_out_norm))
            w_v, w_o = adapter.value_and_output_weights(block)
            attn_in = norm(layer, adapter.attn_norm, resolve(block, adapter.attn_norm))
            w_v = attn_in.fold_after(w_v)
            # (source, head, target), in float32 to fold the norm scales in; the trace's copy is
            # then released: at long prompts the patterns are the run's largest tensors (28 GB
            # at 8,192 tokens of the Gemma-2-2B shape), so they are held once, not twice.
            pattern = trace.patterns[layer]
            source, heads, target = pattern.shape[2], pattern.shape[0], pattern.shape[1]
            folded = torch.empty(source, heads, target, device=pattern.device)
            folded.copy_(pattern.permute(2, 0, 1))
            trace.patterns[layer] = pattern = _RELEASED
            folded.mul_(attn_in.scale[:, 0, None, None])  # source positions
            if adapter.attn_out_norm is not None:
                path = adapter.attn_out_norm
                attn_out = norm(layer, path, resolve(block, path))
                w_o = attn_out.fold_before(w_o)
                folded.mul_(attn_out.scale[:, 0])  # target positions
            dtype = rm.dtype
            self.blocks.append(
                _Block(
                    pattern_t=folded.to(dtype),
                    w_v=w_v.to(dtype),
                    w_o=w_o.to(dtype),
                    to_input=to_input,
                    to_leaf=to_leaf,
                    skip=tc.skip[layer],
                )
            )
        final = resolve(rm.model, adapter.final_norm)
        self.final = _Norm(kind, trace.norm_scales[(None, adapter.final_norm)], _gain(final, kind))
        self.n_layers = rm.n_layers
        self.d_model = rm.d_model

    def run(
        self,
        layers: torch.Tensor,
        positions: torch.Tensor,
        vectors: torch.Tensor,
        on_leaf: LeafCallback,
    ) -> torch.Tensor:
        """Backpropagate target directions `vectors` (B, d) seeded at (layer, position); layer
        ``n_layers`` is the final normalised residual (a logit target). `layers` (on the CPU)
        must be sorted highest first. ``on_leaf(j, g)`` receives block j's leaf gradient for the
        rows above layer j (the batch's first k); returns the (B, P, d) gradient at the token
        embeddings, P the last target position + 1."""
        if len(layers) > 1 and bool((layers[1:] > layers[:-1]).any()):
            raise ValueError("rows must be sorted by layer, highest first")
        block0 = self.blocks[0]
        dtype, device = block0.w_o.dtype, block0.w_o.device
        n_pos = int(positions.max()) + 1
        grad = torch.zeros(len(layers), n_pos, self.d_model, dtype=dtype, device=device)
        above = [int((layers > j).sum()) for j in range(self.n_layers + 1)]  # rows above j
        final_rows = slice(0, int((layers == self.n_layers).sum()))
        self._seed(grad, final_rows, positions, vectors, self.final)
        for j in range(min(int(layers[0]), self.n_layers - 1), -1, -1):
            block, k = self.blocks[j], above[j]
            if k:
                g_res = grad[:k]
                g_leaf = (
                    g_res
                    if block.to_leaf is None
                    else block.to_leaf.backward(g_res, block.to_leaf.scale[:n_pos])
                )
                on_leaf(j, g_leaf)
                if block.skip is not None:
                    g_in = (g_leaf.reshape(-1, self.d_model) @ block.skip.T).view_as(g_res)
                    g_res += self._to_residual(block, g_in, n_pos)
                g_res += self._attention(block, g_res)
            k_at = k + int((layers == j).sum())
            if k_at > k:
                # Rows of layer j start at their own position: their attention backward needs
                # the output projection at that one position, not the whole prefix.
                seeded = slice(k, k_at)
                seed = self._seed(grad, seeded, positions, vectors, block.to_input)
                grad[seeded] += self._attention_at(block, seed, positions[seeded], n_pos)
        return grad

    @staticmethod
    def _seed(
        grad: torch.Tensor,
        rows: slice,
        positions: torch.Tensor,
        vectors: torch.Tensor,
        norm: _Norm | None,
    ) -> torch.Tensor:
        """Add the target directions of `rows`, seeded after `norm` (None: at the residual),
        at their positions; returns them (m, d) as added."""
        at = positions[rows]
        seed = (
            vectors[rows] if norm is None else norm.backward(vectors[rows].float(), norm.scale[at])
        )
        seed = seed.to(grad.dtype)
        grad[torch.arange(rows.start, rows.stop, device=grad.device), at] += seed
        return seed

    @staticmethod
    def _to_residual(block: _Block, g_in: torch.Tensor, n_pos: int) -> torch.Tensor:
        if block.to_input is None:
            return g_in
        return block.to_input.backward(g_in, block.to_input.scale[:n_pos])

    @staticmethod
    def _heads(block: _Block) -> tuple[int, int, int]:
        """(heads, head_dim, heads per key/value group)."""
        n_heads = block.pattern_t.shape[1]
        head_dim = block.w_o.shape[1] // n_heads
        return n_heads, head_dim, n_heads // (block.w_v.shape[0] // head_dim)

    def _attention_at(
        self, block: _Block, seed: torch.Tensor, at: torch.Tensor, n_pos: int
    ) -> torch.Tensor:
        """(m, P, d): what the attention of `block` sends back from gradients `seed` (m, d) that
        sit at one position each, `at` (m,)."""
        m, d = seed.shape
        n_heads, head_dim, group = self._heads(block)
        z = (seed @ block.w_o).view(m, n_heads, head_dim)
        # (m, source position, head): each row's pattern column at its own target position.
        columns = block.pattern_t[:n_pos, :, at].permute(2, 0, 1)
        g_x: torch.Tensor | None = None
        for start in range(0, n_heads, group):
            heads = slice(start, start + group)
            g_values = torch.bmm(columns[:, :, heads], z[:, heads]).view(m * n_pos, head_dim)
            w_v = block.w_v[start // group * head_dim : (start // group + 1) * head_dim]
            g_x = g_values @ w_v if g_x is None else g_x.addmm_(g_values, w_v)
        assert g_x is not None
        return g_x.view(m, n_pos, d)

    def _attention(self, block: _Block, g: torch.Tensor) -> torch.Tensor:
        """(k, P, d): what the attention of `block` sends back to its input residual."""
        k, p, d = g.shape
        n_heads, head_dim, group = self._heads(block)
        # (heads x positions, rows x head_dim): each head's gradient at its output, stacked, so
        # that one GEMM crosses a key/value group's patterns for every row at once (no expanded
        # copy of the shared values).
        z = (g.reshape(k * p, d) @ block.w_o).view(k, p, n_heads, head_dim)
        z = z.permute(2, 1, 0, 3).reshape(n_heads * p, k * head_dim)
        # (source position, heads x target position): every head's pattern, transposed.
        pattern_t = block.pattern_t[:p, :, :p].reshape(p, n_heads * p)
        g_x: torch.Tensor | None = None
        for kv in range(n_heads // group):
            heads = slice(kv * group * p, (kv + 1) * group * p)
            g_values = (pattern_t[:, heads] @ z[heads]).view(p * k, head_dim)
            w_v = block.w_v[kv * head_dim : (kv + 1) * head_dim]
            g_x = g_values @ w_v if g_x is None else g_x.addmm_(g_values, w_v)
        assert g_x is not None
        return g_x.view(p, k, d).transpose(0, 1)
