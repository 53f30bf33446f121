"""`attribute()`: the attribution graph of one next-token prediction, circuit-tracer's semantics.

Algorithm (circuit-tracer / "Attribution Graphs" methods):
1. forward: one linearised forward pass (replacement.py) records each layer's transcoder input,
   the true output-hook value and the token embeddings; features are encoded from the inputs,
   and the special first token's features and errors are zeroed.
2. logits: the targets are the top ``max_n_logits`` tokens, cut where the cumulative probability
   reaches ``desired_logit_prob`` (the crossing token included). A target's direction is its
   unembedding row minus the mean row (no softcap, no bias). One batched backward pass per batch of
   targets gives their rows.
3. features: each feature's row comes from a backward pass from its encoder row at its layer and
   position. With ``max_feature_nodes`` below the number of active features, features are visited
   in order of their influence on the logits, re-estimated from the rows computed so far every
   ``update_interval`` batches (as circuit-tracer does).
4. assemble: rows and columns in the node order of graph.py.

Backward passes are batched with ``torch.autograd.grad(..., is_grads_batched=True)`` over a
single forward pass, so memory does not grow with copies of the model's activations.

Job-system interface (kept stable):
- ``on_progress(phase, fraction)`` is called with phase in ``PHASES`` = ("forward", "logits",
  "features") and fraction in [0, 1], at the start and end of each phase and after every batch.
- ``should_stop()`` is polled before every backward batch; when it returns True, ``attribute``
  raises ``AttributionCancelled`` and keeps nothing.
- Bad input (empty prompt, token id out of range, bad target) raises ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from .graph import Graph
from .replacement import LinearisedForward, ReplacementModel, run_linearised

PHASES = ("forward", "logits", "features")
ProgressCallback = Callable[[str, float], None]


class AttributionCancelled(Exception):
    """`should_stop()` returned True between two backward batches."""


@dataclass(frozen=True)
class LogitDiff:
    """Target the difference logit(token) - logit(baseline)."""

    token: int
    baseline: int


@dataclass(frozen=True)
class CustomTarget:
    """Target an arbitrary direction in the final normalised residual at the last position."""

    label: str
    weight: float  # plays the role of the target's probability in influence and pruning
    vector: torch.Tensor  # (d_model,)


TargetSpec = Sequence[int] | LogitDiff | Sequence[CustomTarget] | None


@dataclass
class _Targets:
    tokens: torch.Tensor  # (k,) vocabulary ids, or vocab_size + i for custom targets
    probabilities: torch.Tensor  # (k,)
    vectors: torch.Tensor  # (k, d_model)
    labels: list[str]


def _select_targets(
    rm: ReplacementModel,
    logits: torch.Tensor,
    spec: TargetSpec,
    max_n_logits: int,
    desired_logit_prob: float,
) -> _Targets:
    unembed = rm.unembed_weight.detach().float()  # (vocab, d)
    vocab = logits.shape[0]
    probs = torch.softmax(logits.float(), dim=-1)

    def for_ids(ids: torch.Tensor) -> _Targets:
        vectors = unembed[ids] - unembed.mean(0, keepdim=True)
        labels = [rm.decode_token(int(i)) for i in ids]
        return _Targets(ids, probs[ids], vectors, labels)

    if spec is None:
        if max_n_logits < 1 or not 0.0 < desired_logit_prob <= 1.0:
            raise ValueError("max_n_logits must be >= 1 and desired_logit_prob in (0, 1]")
        top_p, top_ids = torch.topk(probs, min(max_n_logits, vocab))
        cutoff = int(torch.searchsorted(torch.cumsum(top_p, 0), desired_logit_prob)) + 1
        return for_ids(top_ids[:cutoff])
    if isinstance(spec, LogitDiff):
        for t in (spec.token, spec.baseline):
            if not 0 <= t < vocab:
                raise ValueError(f"target token {t} is outside [0, {vocab})")
        label = f"logit({rm.decode_token(spec.token)})-logit({rm.decode_token(spec.baseline)})"
        vector = unembed[spec.token] - unembed[spec.baseline]
        return _Targets(torch.tensor([vocab]), torch.ones(1), vector[None], [label])
    items: list[int | CustomTarget] = list(spec)
    if not items:
        raise ValueError("attribution_targets is empty")
    customs = [t for t in items if isinstance(t, CustomTarget)]
    if customs:
        if len(customs) != len(items):
            raise ValueError("attribution_targets mixes token ids and custom targets")
        for custom in customs:
            if custom.vector.shape != (rm.d_model,):
                raise ValueError(f"custom target {custom.label!r} needs a ({rm.d_model},) vector")
        return _Targets(
            torch.arange(vocab, vocab + len(customs)),
            torch.tensor([t.weight for t in customs], dtype=torch.float32),
            torch.stack([t.vector.detach().float().cpu() for t in customs]),
            [t.label for t in customs],
        )
    ids = torch.tensor([int(t) for t in items if not isinstance(t, CustomTarget)])
    if int(ids.min()) < 0 or int(ids.max()) >= vocab:
        raise ValueError(f"target tokens must be ids in [0, {vocab})")
    return for_ids(ids)


@dataclass
class _DecoderBlock:
    """The scaled decoder rows of one source layer's features, padded per position.

    ``padded[o, p, slot]`` is ``a * W_dec`` (into output layer src + o) of the feature in that
    slot at position p, so contracting with gradients is a batched GEMM over positions instead
    of a gather of (batch, features, d_model) blocks.
    """

    start: int  # column of the layer's first feature
    pos: torch.Tensor  # (k,) position of each feature
    slot: torch.Tensor  # (k,) its slot among the features at that position
    padded: torch.Tensor  # (n_out_layers, n_pos, max_per_position, d_model)

    @classmethod
    def build(
        cls, start: int, pos: torch.Tensor, scaled: torch.Tensor, n_pos: int
    ) -> _DecoderBlock:
        counts = torch.bincount(pos, minlength=n_pos)
        first = torch.cumsum(counts, 0) - counts  # features are sorted by position
        slot = torch.arange(len(pos), device=pos.device) - first[pos]
        n_out, d = scaled.shape[1], scaled.shape[2]
        width = int(counts.max()) if len(pos) else 0
        padded = scaled.new_zeros(n_out, n_pos, width, d)
        padded[:, pos, slot] = scaled.transpose(0, 1)
        return cls(start, pos, slot, padded)


class _RowComputer:
    """Contracts batched gradients with every source vector: one row per target."""

    def __init__(self, rm: ReplacementModel, trace: LinearisedForward, zero_positions: int = 1):
        tc = rm.transcoders
        self.trace = trace
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
            # Kept in the model's dtype: on a bf16 model of a long prompt these blocks are the
            # largest thing on the GPU (2,000 tokens x 26 layers x 64 features: ~22 GB in bf16).
            blocks.append(_DecoderBlock.build(start, pos, scaled.to(trace.outputs[0].dtype), n_pos))
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

    def rows(
        self, layers: torch.Tensor, positions: torch.Tensor, vectors: torch.Tensor
    ) -> torch.Tensor:
        """(B, n_cols) direct effects on targets at (layer, pos) along `vectors` (B, d_model).

        Layer ``n_layers`` means the final normalised residual (logit targets).
        """
        trace, batch = self.trace, len(layers)
        outputs, grad_outputs = [], []
        for layer in sorted(set(layers.tolist())):
            tensor = trace.final_resid if layer == self.n_layers else trace.feature_inputs[layer]
            assert tensor is not None
            seed = torch.zeros((batch, *tensor.shape), dtype=tensor.dtype, device=tensor.device)
            sel = (layers == layer).nonzero().squeeze(1)
            seed[sel, 0, positions[sel]] = vectors[sel].to(tensor.device, tensor.dtype)
            outputs.append(tensor)
            grad_outputs.append(seed)
        # Only outputs of layers below the highest target layer can reach any target.
        n_src = min(int(layers.max()), self.n_layers)
        assert trace.embed_leaf is not None
        grads = torch.autograd.grad(
            outputs,
            [trace.embed_leaf, *trace.output_leaves[:n_src]],
            grad_outputs,
            retain_graph=True,
            is_grads_batched=True,
            allow_unused=True,
            materialize_grads=True,
        )
        device = self.token_vectors.device
        row = torch.zeros(batch, self.n_cols, dtype=torch.float32, device=device)
        n = self.n_pos
        g_embed = grads[0][:, 0].float()
        row[:, self.token_offset :] = torch.einsum("bnd,nd->bn", g_embed, self.token_vectors)
        for j in range(n_src):
            g = grads[1 + j][:, 0].float()  # (B, n_pos, d): gradient at layer j's output hook
            err_start = self.error_offset + j * n
            row[:, err_start : err_start + n] = torch.einsum("bnd,nd->bn", g, self.errors[j])
            for i in range(0 if self.cross_layer else j, j + 1):
                self._add_feature_effects(row, g, i, j)
        return row

    def _add_feature_effects(self, row: torch.Tensor, g: torch.Tensor, src: int, dst: int) -> None:
        block = self.blocks[src]
        if len(block.pos) == 0:
            return
        # One GEMM per position: (B, d) grads x (d, k_pos) decoders, batched over positions, in
        # the model's dtype (float32 for a float32 model).
        padded = block.padded[dst - src]
        out = torch.bmm(g.transpose(0, 1).to(padded.dtype), padded.transpose(1, 2))
        row[:, block.start : block.start + len(block.pos)] += out[
            block.pos, :, block.slot
        ].T.float()


def partial_influences(
    edge_matrix: torch.Tensor,
    logit_weights: torch.Tensor,
    row_to_node: torch.Tensor,
    max_iter: int = 128,
) -> torch.Tensor:
    """Influence on the logits of every column, from the rows computed so far (power series)."""
    normalized = edge_matrix.abs()
    normalized /= normalized.sum(dim=1, keepdim=True).clamp(min=1e-8)
    influences = torch.zeros(edge_matrix.shape[1], device=edge_matrix.device)
    prod = torch.zeros(edge_matrix.shape[1], device=edge_matrix.device)
    prod[-len(logit_weights) :] = logit_weights
    for _ in range(max_iter):
        prod = prod[row_to_node] @ normalized
        if not prod.any():
            return influences
        influences += prod
    raise RuntimeError("feature influence did not converge; the graph has a cycle")


def attribute(
    prompt: str | list[int] | torch.Tensor,
    model: ReplacementModel,
    *,
    attribution_targets: TargetSpec = None,
    max_n_logits: int = 10,
    desired_logit_prob: float = 0.95,
    max_feature_nodes: int | None = None,
    batch_size: int = 256,
    update_interval: int = 4,
    on_progress: ProgressCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Graph:
    """Attribution graph of `model`'s next-token prediction after `prompt` (see graph.py)."""
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    if max_feature_nodes is not None and max_feature_nodes < 1:
        raise ValueError("max_feature_nodes must be >= 1 (or None for all)")

    def progress(phase: str, fraction: float) -> None:
        if on_progress is not None:
            on_progress(phase, min(1.0, fraction))

    def check_stop() -> None:
        if should_stop is not None and should_stop():
            raise AttributionCancelled("attribution cancelled")

    tokens = model.tokenize(prompt)
    progress("forward", 0.0)
    check_stop()
    trace = run_linearised(model, tokens)
    computer = _RowComputer(model, trace)
    progress("forward", 1.0)
    assert trace.logits is not None
    targets = _select_targets(
        model, trace.logits, attribution_targets, max_n_logits, desired_logit_prob
    )

    n_layers, n_pos, n_active = model.n_layers, computer.n_pos, computer.n_active
    logit_offset = computer.n_cols
    n_logits = len(targets.labels)
    total_nodes = logit_offset + n_logits
    n_keep = n_active if max_feature_nodes is None else min(max_feature_nodes, n_active)
    keep_all = n_keep == n_active
    # With every feature kept, rows go straight to their final place in the (N, N) adjacency.
    # When selecting, logit rows come first, then feature rows in visit order (the ranking
    # reads them); columns and order are fixed at the end.
    device = model.device
    # Selecting features re-ranks them by influence every few batches from the rows so far:
    # that buffer lives on the model's device (a GPU does the ranking in milliseconds); the full
    # adjacency of an all-features graph is assembled on the CPU.
    home = torch.device("cpu") if keep_all else device
    buffer = torch.zeros(total_nodes if keep_all else n_keep + n_logits, total_nodes, device=home)
    logit_row = total_nodes - n_logits if keep_all else 0
    row_to_node = torch.zeros(n_keep + n_logits, dtype=torch.long, device=home)

    # Logit rows first: they seed the influence ranking of features.
    progress("logits", 0.0)
    for i in range(0, n_logits, batch_size):
        check_stop()
        vecs = targets.vectors[i : i + batch_size].to(device)
        k = vecs.shape[0]
        rows = computer.rows(
            torch.full((k,), n_layers), torch.full((k,), n_pos - 1, device=device), vecs
        )
        buffer[logit_row + i : logit_row + i + k, :logit_offset] = rows.to(home)
        row_to_node[i : i + k] = torch.arange(i, i + k, device=home) + logit_offset
        progress("logits", (i + k) / n_logits)

    feat_layers = computer.active_features[:, 0]
    feat_pos = computer.active_features[:, 1].to(device)
    progress("features", 0.0 if n_keep else 1.0)
    visited = torch.zeros(n_active, dtype=torch.bool)
    n_visited, row = 0, n_logits
    while n_visited < n_keep:
        if keep_all:
            pending = torch.arange(n_active)
        else:
            influence = partial_influences(
                buffer[:row], targets.probabilities.float().to(home), row_to_node[:row]
            )
            rank = torch.argsort(influence[:n_active], descending=True).cpu()
            pending = rank[~visited[rank]][: min(update_interval * batch_size, n_keep - n_visited)]
        for c in range(0, len(pending), batch_size):
            check_stop()
            idx = pending[c : c + batch_size]
            on_device = idx.to(device)
            rows = computer.rows(
                feat_layers[idx], feat_pos[on_device], computer.encoder_rows(on_device)
            )
            if keep_all:
                buffer[idx, :logit_offset] = rows.cpu()
            else:
                buffer[row : row + len(idx), :logit_offset] = rows
                row_to_node[row : row + len(idx)] = on_device
            visited[idx] = True
            row += len(idx)
            n_visited += len(idx)
            progress("features", n_visited / n_keep)
    del trace, computer.trace  # frees the autograd graph of the forward pass

    selected = visited.nonzero().squeeze(1)
    if keep_all:
        adjacency = buffer
    else:
        columns = torch.cat([selected, torch.arange(n_active, total_nodes)]).to(home)
        # Features by index, then logits; one row at a time would be slow, a copy of the
        # buffer in the original order costs its size again: go through the CPU in row blocks.
        order = row_to_node.argsort()
        ordered = torch.cat(
            [buffer[order[i : i + 1024]][:, columns].cpu() for i in range(0, len(order), 1024)]
        )
        n_nodes = len(columns)
        adjacency = torch.zeros(n_nodes, n_nodes)
        adjacency[:n_keep] = ordered[:n_keep]
        adjacency[n_nodes - n_logits :] = ordered[n_keep:]

    token_strings = [model.decode_token(int(t)) for t in tokens]
    if isinstance(prompt, str):
        input_string = prompt
    elif model.tokenizer is not None:
        input_string = str(model.tokenizer.decode(tokens.tolist()))
    else:
        input_string = "".join(token_strings)
    return Graph(
        input_string=input_string,
        input_tokens=tokens.cpu(),
        input_token_strings=token_strings,
        active_features=computer.active_features,
        activation_values=computer.activation_values,
        selected_features=selected,
        adjacency=adjacency,
        logit_tokens=targets.tokens.cpu(),
        logit_probabilities=targets.probabilities.float().cpu(),
        logit_labels=targets.labels,
        n_layers=n_layers,
        vocab_size=int(model.unembed_weight.shape[0]),
        scan=model.transcoders.scan,
        model_name=model.name,
        settings={
            "max_n_logits": max_n_logits,
            "desired_logit_prob": desired_logit_prob,
            "max_feature_nodes": max_feature_nodes,
            "batch_size": batch_size,
        },
    )
