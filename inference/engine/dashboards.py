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
  windows of its firing tokens that are not top examples (each shown at its earliest such token
  in the band). The draw is a bottom-k sample by a hash of (seed, layer, feature, window), so it
  is reproducible and does not depend on the batch size or on a resume. A drawn sample that
  still repeats a top example (same context with overlapping windows, or the same tokens shown)
  is then left out, so such a band shows one fewer;
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
``cells`` = the power of two ≥ 4·n_intervals), plus, when it fits in ``window_store_limit``
bytes, each top example's and reservoir entry's window of activations (``4·(top_k + cells·
examples_per_interval)·(tokens_before + 1 + tokens_after)`` bytes), copied from the batch it
arrives in: the windows then need no second forward. Over the limit, the contexts the chosen
examples come from are run again at the end ("examples" phase), every layer encoded from one
forward pass per batch. Either way the windows' tokens are read again from the corpus's ids, a
layer at a time as its JSON is made.

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

The corpus is any iterable of contexts (1-D token-id tensors or lists, each starting with the
special first token), such as a list or a ``corpus.TokenizedCorpus``; it is read once, its ids
kept in a temporary file (``dashboard_tokens``) for the streaming and the examples' contexts.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel

from .dashboard_files import Feature, _layer_json, _Windows
from .dashboard_forward import (
    _batches,
    _BatchRows,
    _firing,
    _lookup,
    _output_tokens,
    _padded,
    _run,
    _take_windows,
    _TokenNames,
)
from .dashboard_stats import _Firing, _LayerState, _Picks, _picks, _Settings, _window_hashes
from .dashboard_tokens import _CorpusTokens
from .replacement import ReplacementModel
from .transcoders import Transcoders

PHASES = ("activations", "examples", "outputs")
# Above this many bytes of window store (`_Settings.window_store_bytes`: 724 MB for the demo
# pack, 38 GB for a Gemma-2-2B-shaped set) the windows come from a second forward instead.
WINDOW_STORE_LIMIT = 2 << 30
ProgressCallback = Callable[[str, float], None]


class DashboardsCancelled(Exception):
    """`should_stop()` returned True between two batches (the checkpoint, if any, is kept)."""


# ---------------------------------------------------------------------------------------------
# The entry point


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
    lengths: torch.Tensor,
    layer: int,
    firing: _Firing,
) -> None:
    by_layer[layer].update(firing, valid, first_row, whash, lengths)


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
    window_store_limit: int = WINDOW_STORE_LIMIT,
    on_progress: ProgressCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_layer: Callable[[int, Iterator[Feature]], None] | None = None,
) -> dict[int, list[Feature]]:
    """Dashboards of every feature of ``layers`` (default all), one JSON-ready dict per feature
    in circuit-tracer's feature shape (see the module docstring for every field).

    Layers are finished one at a time at the end. With ``on_layer`` each is handed over as an
    iterator over its features in order of index, made a chunk of features at a time as it is
    read (read it within the call; the returned dict is then empty), so the output phase holds
    one layer's windows and a chunk of features, not the layer's dashboards as Python objects.
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

    ids = _CorpusTokens(corpus, vocab)  # tokenized here, once; its file goes when it does
    if ids.n_tokens == 0:
        raise ValueError("the corpus has no contexts")
    s = _Settings(
        top_k, tokens_before, tokens_after, n_intervals, examples_per_interval, histogram_bins,
        seed, chosen, rm.transcoders.d_transcoder, int(ids.lengths.max()), False,
    )  # fmt: skip
    s = replace(s, stream_windows=s.window_store_bytes() <= window_store_limit)
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
    rows = ids.rows(meta["rows"])
    report("activations", meta["tokens"] / ids.n_tokens)
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
            partial(_fold, by_layer, valid, first_row, whash, lengths),
            _firing,
        )
        meta["rows"] += len(batch)
        meta["tokens"] += int(lengths.sum())
        meta["counted"] += int(valid.sum())
        report("activations", meta["tokens"] / ids.n_tokens)
        if n_batch % checkpoint_every == 0:
            checkpoint_now()
    checkpoint_now()

    # Phase 2: where the windows' activations are not in the store, one more forward over the
    # contexts the examples come from copies them out (every layer's picks are needed for it).
    picks: list[_Picks] = []
    values: dict[int, torch.Tensor] = {}
    if s.stream_windows:
        report("examples", 1.0)
    else:
        picks = [_picks(state) for state in states]
        values = _window_values(rm, ids, s, states, picks, batch_size, pad, report, stop_requested)

    # Phase 3: each layer's windows, output tokens and JSON, one layer at a time; a layer's
    # state, picks and windows are let go once it is handed over, so beyond the states still
    # waiting the output phase holds one layer's windows and the features being read.
    names = _TokenNames(rm)
    out: dict[int, list[Feature]] = {}
    by_layer.clear()
    while states:
        state = states.pop(0)
        pick = picks.pop(0) if picks else _picks(state)
        layer = state.layer
        windows = _layer_windows(state, pick, values, ids, s)
        logits = _output_tokens(rm, layer, n_logits)
        features = _layer_json(state, pick, windows, logits, meta["counted"], names)
        del state, pick, windows  # the generator holds what it needs
        if on_layer is not None:
            on_layer(layer, features)
        else:
            out[layer] = list(features)
        del features
        report("outputs", 1 - len(states) / len(chosen))
    if checkpoint is not None:
        checkpoint.unlink(missing_ok=True)
    return out


def _layer_windows(
    state: _LayerState,
    pick: _Picks,
    values: dict[int, torch.Tensor],
    ids: _CorpusTokens,
    s: _Settings,
) -> _Windows:
    """A layer's picked windows: their values from its window store, which is let go here, or
    from the second forward's (``values``, whose entry is taken out); their ids from the corpus."""
    if state.store is not None:
        store, state.store = state.store, None
        layer_values = store[pick.feature.to(store.device), pick.slot.to(store.device)].cpu()
    else:
        layer_values = values.pop(state.layer)
    return _Windows(ids.windows(pick.ptr, s.context, s.tokens_before, s.tokens_after), layer_values)


def _window_values(
    rm: ReplacementModel,
    ids: _CorpusTokens,
    s: _Settings,
    states: list[_LayerState],
    picks: list[_Picks],
    batch_size: int,
    pad: int,
    report: ProgressCallback,
    stop_requested: Callable[[], bool],
) -> dict[int, torch.Tensor]:
    """Each layer's (picks, width) window activations, from one forward per batch of the
    contexts the picks come from, every layer encoded in it."""
    out = {
        st.layer: torch.zeros((len(p.ptr), s.width)) for st, p in zip(states, picks, strict=True)
    }
    needed = torch.unique(torch.cat([p.ptr // s.context for p in picks]))
    report("examples", 0.0 if len(needed) else 1.0)
    position = {st.layer: i for i, st in enumerate(states)}
    pick_rows = {st.layer: p.ptr // s.context for st, p in zip(states, picks, strict=True)}
    rows = ((i, ids.row(i)) for i in needed.tolist())
    done = 0
    for batch in _batches(rows, batch_size):
        if stop_requested():
            raise DashboardsCancelled("dashboards cancelled")
        index = torch.tensor([i for i, _ in batch])
        tokens, lengths = _padded([r for _, r in batch], pad, rm.device)
        batch_rows = _BatchRows(index, lengths.cpu())
        take = partial(_take_windows, s, picks, pick_rows, position, out, batch_rows)
        _run(rm, tokens, [st.layer for st in states], take, _lookup)
        done += len(batch)
        report("examples", done / len(needed))
    return out
