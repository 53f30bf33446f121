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

Backward passes (rows.py, backward.py) are written out by hand over what the single forward pass
recorded (frozen patterns and norm scales), a batch of rows at a time, each batch over only the
positions and layers its rows reach.

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

from contract.params import ENGINE_BATCH_SIZE, AttributeParams

from .graph import Graph
from .replacement import ReplacementModel, run_linearised
from .rows import RowComputer, by_layer, visit_order
from .sparse_ranking import SparseRows

PHASES = ("forward", "logits", "features")
# Rows gathered per step when the graph's rows are assembled (`_assemble`): that step's
# transient is `ASSEMBLY_ROWS` rows of the graph's width.
ASSEMBLY_ROWS = 1024
# Batches of feature rows between two re-rankings of the features (as circuit-tracer's
# ``update_interval``); the memory planner sizes the sparse ranking's selection by it.
UPDATE_INTERVAL = 4
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


def partial_influences(
    edge_matrix: torch.Tensor,
    logit_weights: torch.Tensor,
    row_to_node: torch.Tensor,
    max_iter: int = 128,
    chunk_bytes: int = 2**28,
    device: torch.device | None = None,
) -> torch.Tensor:
    """Influence on the logits of every column, from the rows computed so far (power series).

    Influence only travels on through columns that are rows, so the series runs on the (R, R)
    block of the row-normalised matrix (R rows), and every column's influence is the summed row
    weights times the normalised rows. The normalised matrix is made in row chunks of about
    ``chunk_bytes``: a whole |A| copy would double the ranking buffer, the largest thing a long
    prompt keeps (docs/engine.md, "Memory"). The series runs on ``device`` (default: the
    matrix's); a matrix offloaded to the host goes there one chunk at a time.
    """
    n_rows, n_cols = edge_matrix.shape
    device = edge_matrix.device if device is None else device
    row_to_node = row_to_node.to(device)
    step = max(1, chunk_bytes // max(4 * n_cols, 1))
    chunks = [(r, min(r + step, n_rows)) for r in range(0, n_rows, step)]

    def normalized(start: int, end: int) -> torch.Tensor:
        rows = edge_matrix[start:end]
        # an offloaded chunk is copied to the device first, so |.| runs there, in place; a
        # chunk already there is a view of the buffer, and |.| makes the copy
        block = rows.to(device)
        block = block.abs() if block.data_ptr() == rows.data_ptr() else block.abs_()
        return block.div_(block.sum(dim=1, keepdim=True).clamp(min=1e-8))

    among_rows = torch.cat([normalized(s, e)[:, row_to_node] for s, e in chunks])  # (R, R)
    seed = torch.zeros(n_cols, device=device)
    seed[-len(logit_weights) :] = logit_weights
    weight = seed[row_to_node]  # the influence arriving at each row's node
    total = torch.zeros(n_rows, device=device)
    for _ in range(max_iter):
        if not weight.any():
            influences = torch.zeros(n_cols, device=device)
            for s, e in chunks:
                influences += total[s:e] @ normalized(s, e)
            return influences
        total += weight
        weight = weight @ among_rows
    raise RuntimeError("feature influence did not converge; the graph has a cycle")


@dataclass
class _Run:
    """One `attribute` call's batching and callbacks, shared by its phases."""

    batch_size: int
    update_interval: int
    on_progress: ProgressCallback | None
    should_stop: Callable[[], bool] | None

    def progress(self, phase: str, fraction: float) -> None:
        if self.on_progress is not None:
            self.on_progress(phase, min(1.0, fraction))

    def check_stop(self) -> None:
        if self.should_stop is not None and self.should_stop():
            raise AttributionCancelled("attribution cancelled")


@dataclass
class _Rows:
    """Where rows go as they are computed.

    With every feature kept (``keep_all``), rows go straight to their final place in the graph's
    rows (graph.py ``target_rows``: features by index, then logits), on the CPU. When selecting, logit rows come first, then feature rows in visit
    order, on the model's device: the ranking re-reads them every few batches (a GPU does that in
    milliseconds). With ``offload``, that ranking buffer is on the host instead (it is idle
    between re-rankings): each batch's rows are copied there as computed, and the ranking streams
    it back in chunks (`partial_influences`). ``row_to_node[r]`` is the node of buffer row r.
    """

    buffer: torch.Tensor
    row_to_node: torch.Tensor
    keep_all: bool
    n_keep: int
    n_logits: int
    logit_offset: int  # column of the first logit node = number of source columns

    @classmethod
    def allocate(
        cls,
        computer: RowComputer,
        n_logits: int,
        n_keep: int,
        device: torch.device,
        offload: bool,
    ) -> _Rows:
        keep_all = n_keep == computer.n_active
        total = computer.n_cols + n_logits
        home = torch.device("cpu") if keep_all or offload else device
        buffer = torch.zeros(n_keep + n_logits, total, device=home)
        row_to_node = torch.zeros(n_keep + n_logits, dtype=torch.long, device=home)
        return cls(buffer, row_to_node, keep_all, n_keep, n_logits, computer.n_cols)

    @property
    def logit_row(self) -> int:
        return self.buffer.shape[0] - self.n_logits if self.keep_all else 0


def _logit_rows(
    run: _Run, computer: RowComputer, targets: _Targets, rows: _Rows | SparseRows
) -> None:
    """Rows of the target logits: they seed the influence ranking of features."""
    device, n_logits = computer.token_vectors.device, rows.n_logits
    run.progress("logits", 0.0)
    for i in range(0, n_logits, run.batch_size):
        run.check_stop()
        vecs = targets.vectors[i : i + run.batch_size].to(device)
        k = vecs.shape[0]
        result = computer.rows(
            torch.full((k,), computer.n_layers),
            torch.full((k,), computer.n_pos - 1, device=device),
            vecs,
        )
        if isinstance(rows, SparseRows):
            rows.add_logit_rows(i, result)
            continue
        home = rows.buffer.device
        rows.buffer[rows.logit_row + i : rows.logit_row + i + k, : rows.logit_offset] = result.to(
            home
        )
        rows.row_to_node[i : i + k] = torch.arange(i, i + k, device=home) + rows.logit_offset
        run.progress("logits", (i + k) / n_logits)


def _all_feature_rows(run: _Run, computer: RowComputer, rows: _Rows) -> None:
    """Every feature's row, in batches of neighbouring positions: a batch's backward pass covers
    the positions up to its last row's (rows.py), so ordering by position keeps each batch's
    span short; each batch is then sorted by layer, which the backward pass needs."""
    device, n_active = computer.token_vectors.device, computer.n_active
    feat_layers, feat_pos = computer.active_features[:, 0], computer.active_features[:, 1]
    order = torch.argsort(feat_pos * (computer.n_layers + 1) + feat_layers, stable=True)
    for c in range(0, n_active, run.batch_size):
        run.check_stop()
        idx = by_layer(order[c : c + run.batch_size], feat_layers)
        on_device = idx.to(device)
        result = computer.rows(
            feat_layers[idx], feat_pos[idx].to(device), computer.encoder_rows(on_device)
        )
        rows.buffer[idx, : rows.logit_offset] = result.cpu()
        run.progress("features", (c + len(idx)) / n_active)


def _feature_rows(run: _Run, computer: RowComputer, targets: _Targets, rows: _Rows) -> torch.Tensor:
    """Rows of the features, all of them or the ``n_keep`` most influential; returns the
    (n_active,) bool mask of the visited features."""
    if rows.keep_all:
        run.progress("features", 0.0 if computer.n_active else 1.0)
        _all_feature_rows(run, computer, rows)
        return torch.ones(computer.n_active, dtype=torch.bool)
    device, home = computer.token_vectors.device, rows.buffer.device
    n_active, n_keep = computer.n_active, rows.n_keep
    feat_layers = computer.active_features[:, 0]
    feat_pos = computer.active_features[:, 1].to(device)
    run.progress("features", 0.0 if n_keep else 1.0)
    visited = torch.zeros(n_active, dtype=torch.bool)
    n_visited, row = 0, rows.n_logits
    while n_visited < n_keep:
        influence = partial_influences(
            rows.buffer[:row],
            targets.probabilities.float().to(device),
            rows.row_to_node[:row],
            device=device,
        )
        rank = torch.argsort(influence[:n_active], descending=True).cpu()
        wanted = min(run.update_interval * run.batch_size, n_keep - n_visited)
        pending = visit_order(rank[~visited[rank]][:wanted], computer.active_features,
                              run.batch_size)  # fmt: skip
        for c in range(0, len(pending), run.batch_size):
            run.check_stop()
            idx = pending[c : c + run.batch_size]
            on_device = idx.to(device)
            result = computer.rows(
                feat_layers[idx], feat_pos[on_device], computer.encoder_rows(on_device)
            )
            rows.buffer[row : row + len(idx), : rows.logit_offset] = result.to(home)
            rows.row_to_node[row : row + len(idx)] = idx.to(home)
            visited[idx] = True
            row += len(idx)
            n_visited += len(idx)
            run.progress("features", n_visited / n_keep)
    return visited


def _sparse_feature_rows(
    run: _Run, computer: RowComputer, targets: _Targets, rows: SparseRows
) -> torch.Tensor:
    """`_feature_rows` with the ranking keeping ``entries`` of each row (sparse_ranking.py):
    the same selection; returns the (n_active,) bool mask of the visited features."""
    device, n_keep = computer.token_vectors.device, rows.n_keep
    feat_layers = computer.active_features[:, 0]
    feat_pos = computer.active_features[:, 1].to(device)
    probabilities = targets.probabilities.float().to(device)
    run.progress("features", 0.0 if n_keep else 1.0)
    visited = torch.zeros(computer.n_active, dtype=torch.bool)
    while rows.n_slots < n_keep:
        wanted = min(run.update_interval * run.batch_size, n_keep - rows.n_slots)
        pending = rows.next_features(probabilities, visited, wanted, run.batch_size,
                                     run.check_stop)  # fmt: skip
        visited[pending] = True
        for c in range(0, len(pending), run.batch_size):
            run.check_stop()
            idx = pending[c : c + run.batch_size]
            on_device = idx.to(device)
            rows.add_feature_rows(
                computer.rows(
                    feat_layers[idx], feat_pos[on_device], computer.encoder_rows(on_device)
                )
            )
            run.progress("features", rows.n_rows / n_keep)
    return visited


def _assemble(rows: _Rows, selected: torch.Tensor, n_active: int) -> torch.Tensor:
    """The graph's rows (graph.py ``target_rows``: features by index, then logits) at its
    columns (the kept features, errors, tokens, logits), on the CPU."""
    if rows.keep_all:
        return rows.buffer
    columns = torch.cat([selected, torch.arange(n_active, rows.buffer.shape[1])])
    columns = columns.to(rows.buffer.device)
    # Buffer rows are in visit order, logits first; sorted by node, the features come by index,
    # then the logits. Gathered a block of rows at a time, each at its rows and the kept columns
    # at once, into the result: no copy of the buffer in the node order, nor of the result.
    order = rows.row_to_node.argsort()
    out = torch.empty(len(order), len(columns))
    for i in range(0, len(order), ASSEMBLY_ROWS):
        block = order[i : i + ASSEMBLY_ROWS]
        out[i : i + len(block)] = rows.buffer[block[:, None], columns].cpu()
    return out


def _input_string(
    prompt: str | list[int] | torch.Tensor, model: ReplacementModel, tokens: torch.Tensor
) -> str:
    if isinstance(prompt, str):
        return prompt
    if model.tokenizer is not None:
        return str(model.tokenizer.decode(tokens.tolist()))
    return "".join(model.decode_token(int(t)) for t in tokens)


def attribute(
    prompt: str | list[int] | torch.Tensor,
    model: ReplacementModel,
    *,
    attribution_targets: TargetSpec = None,
    max_n_logits: int = AttributeParams.max_n_logits,
    desired_logit_prob: float = AttributeParams.desired_logit_prob,
    max_feature_nodes: int | None = None,
    batch_size: int = ENGINE_BATCH_SIZE,
    update_interval: int = UPDATE_INTERVAL,
    hold_decoder_blocks: bool = True,
    offload_rows: bool = False,
    ranking_entries: int | None = None,
    on_progress: ProgressCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Graph:
    """Attribution graph of `model`'s next-token prediction after `prompt` (see graph.py).

    ``hold_decoder_blocks`` False builds each source layer's decoder block per batch instead of
    holding every layer's (rows.py); ``offload_rows`` keeps the ranking buffer on the host
    (`_Rows`). ``ranking_entries`` keeps only that many entries of each row for the
    influence ranking instead of the dense ranking buffer, and ranks exactly through column
    passes (sparse_ranking.py); it applies when selecting (``max_feature_nodes`` below the
    active count). None of them changes the graph; the memory planner (memory_plan.py) chooses
    them."""
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    if max_feature_nodes is not None and max_feature_nodes < 1:
        raise ValueError("max_feature_nodes must be >= 1 (or None for all)")
    if ranking_entries is not None and ranking_entries < 1:
        raise ValueError("ranking_entries must be >= 1 (or None for the dense ranking)")
    run = _Run(batch_size, update_interval, on_progress, should_stop)

    tokens = model.tokenize(prompt)
    run.progress("forward", 0.0)
    run.check_stop()
    trace = run_linearised(model, tokens)
    computer = RowComputer(model, trace, hold_decoder_blocks=hold_decoder_blocks)
    run.progress("forward", 1.0)
    assert trace.logits is not None
    targets = _select_targets(
        model, trace.logits, attribution_targets, max_n_logits, desired_logit_prob
    )
    n_active = computer.n_active
    n_keep = n_active if max_feature_nodes is None else min(max_feature_nodes, n_active)
    n_logits = len(targets.labels)
    rows: _Rows | SparseRows
    if ranking_entries is not None and n_keep < n_active:
        rows = SparseRows.allocate(computer, n_logits, n_keep, ranking_entries, model.device)
    else:
        rows = _Rows.allocate(computer, n_logits, n_keep, model.device, offload_rows)
    _logit_rows(run, computer, targets, rows)
    del trace  # the backward pass reads only its patterns and norm scales
    if isinstance(rows, SparseRows):
        visited = _sparse_feature_rows(run, computer, targets, rows)
        target_rows = rows.assemble(visited, ASSEMBLY_ROWS)
    else:
        visited = _feature_rows(run, computer, targets, rows)
        target_rows = _assemble(rows, visited.nonzero().squeeze(1), n_active)
    selected = visited.nonzero().squeeze(1)

    token_strings = [model.decode_token(int(t)) for t in tokens]
    return Graph(
        input_string=_input_string(prompt, model, tokens),
        input_tokens=tokens.cpu(),
        input_token_strings=token_strings,
        active_features=computer.active_features,
        activation_values=computer.activation_values,
        selected_features=selected,
        target_rows=target_rows,
        logit_tokens=targets.tokens.cpu(),
        logit_probabilities=targets.probabilities.float().cpu(),
        logit_labels=targets.labels,
        n_layers=model.n_layers,
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
