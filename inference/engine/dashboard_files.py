"""The dashboards' JSON: one circuit-tracer feature dict per feature from a layer's statistics,
and the ``layer_{i}.jsonl.gz`` files they are written to and read from.
"""

from __future__ import annotations

import gc
import gzip
import json
import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .dashboard_forward import _TokenNames
from .dashboard_stats import _LayerState, _Picks

Feature = dict[str, Any]


@dataclass
class _Windows:
    """One layer's picks' windows, row i for pick i."""

    tokens: torch.Tensor  # (n, before + 1 + after) int32 ids, -1 outside the context
    values: torch.Tensor  # (n, before + 1 + after)


def _r(x: float, digits: int = 5) -> float:
    """``digits`` significant digits: small activations keep their size, files stay small."""
    return float(f"{float(x):.{digits}g}") + 0.0  # + 0.0: no -0.0 in the files


def _round_sig(x: torch.Tensor, digits: int) -> torch.Tensor:
    """``_r`` for a whole tensor at once (the windows' values are tens of millions of numbers on
    a large set; one Python format call each took minutes): n / 10**k and n * 10**k are correctly
    rounded, so each becomes the double nearest its decimal, which JSON writes short. Only the
    nonzero values are rounded: most of a window's activations are 0 (a feature fires on few
    tokens), and rounding all of them took 5x longer."""
    x = x.double()
    nonzero = x != 0
    x_nz = x.masked_select(nonzero)
    k = digits - 1 - torch.floor(torch.log10(x_nz.abs().clamp(min=1e-300)))
    up = torch.pow(10.0, k.clamp(min=0))
    down = torch.pow(10.0, (-k).clamp(min=0))
    rounded = torch.where(k >= 0, torch.round(x_nz * up) / up, torch.round(x_nz / down) * down)
    # + 0.0: no -0.0 in the files
    return torch.zeros_like(x).masked_scatter_(nonzero, rounded + 0.0)


@contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """Python's cycle collector paused: a layer's JSON is millions of new lists and dicts (none
    in a cycle), and every few hundred thousand of them set off a collection that walks all the
    live ones again; at 250,000 tokens that was 5.2 of _layer_json's 11.4 CPU-s. On the way out
    the new objects are moved to the oldest generation (freeze, then unfreeze: two list splices)
    rather than left in the youngest, whose next collection, due at once, would walk them all
    (0.2 CPU-s a layer at 1M tokens). Skipped where the process keeps frozen objects of its own,
    which the unfreeze would let go."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            if gc.get_freeze_count() == 0:
                gc.freeze()
                gc.unfreeze()
            gc.enable()


# Features made into Python objects at a time. A layer's examples as Python lists and floats
# grow with the corpus until every band is full (at most 2,048 x 70 windows of 65 tokens a
# layer on the demo pack: hundreds of MB), more than the running state; a chunk's are a few MB,
# handed over and let go before the next is made.
_CHUNK_FEATURES = 128
# Picks compared at a time for repeats of a top example.
_REPEAT_ROWS = 8192


def _layer_json(
    state: _LayerState,
    picks: _Picks,
    windows: _Windows,
    logits: tuple[torch.Tensor, ...],
    counted: int,
    names: _TokenNames,
) -> Iterator[Feature]:
    """The layer's features in order of index, made a chunk at a time as they are read."""
    s, layer = state.s, state.layer
    n_fire = state.n_fire.cpu().tolist()
    total = state.total.cpu().tolist()
    act_min = state.act_min.cpu().tolist()
    act_max = state.top_val[:, 0].cpu().tolist()
    R = state.R.cpu().tolist()
    top_ids, top_vals, bottom_ids, bottom_vals = (t.tolist() for t in logits)
    edges = picks.interval_edges.tolist()
    widths = [1] * s.d_transcoder  # fine bins per histogram bin
    for f in range(s.d_transcoder):
        if n_fire[f]:
            fine_used = min(s.fine_bins, math.floor(act_max[f] / R[f] * s.fine_bins) + 1)
            widths[f] = -(-fine_used // s.histogram_bins)
    # Bin b of feature f sums its fine bins [b w, (b + 1) w): differences of running sums, for
    # every feature at once (not three tensor calls a feature).
    running = torch.nn.functional.pad(state.hist.cpu().long().cumsum(1), (1, 0))
    bin_edges = torch.arange(s.histogram_bins + 1)[None, :] * torch.tensor(widths)[:, None]
    hist_counts = running.gather(1, bin_edges).diff(dim=1).tolist()
    del state, running
    # A window's tokens inside its context are one run (positions 1 to the context's end), so
    # each example is one slice of the windows' inside tokens laid end to end, and as the picks
    # are in feature order (`_picks`) a chunk of features is one run of those: converted to
    # Python (and the values rounded) a chunk at a time, not the -1 padding, and not a list per
    # window.
    inside = windows.tokens >= 0
    lengths = inside.sum(1)
    ends = lengths.cumsum(0)
    starts, ends_at = (ends - lengths).tolist(), ends.tolist()
    centres = (s.tokens_before - inside.int().argmax(1)).tolist()
    kept = windows.tokens.masked_select(inside)
    kept_values = windows.values.masked_select(inside)
    # Tens of millions of tokens on a long corpus: the ids seen from a count per id (not a
    # sort), and the names picked by one numpy index of an object array (not a dict per token).
    seen = torch.bincount(kept).nonzero().squeeze(1).tolist() if len(kept) else []
    token_name = {t: names(t) for t in seen}
    name_of = np.empty(max(seen, default=0) + 1, dtype=object)
    name_of[seen] = [token_name[t] for t in seen]
    repeated = _repeats_top(picks, windows.tokens, token_name, s.context).tolist()
    feature_ends = torch.bincount(picks.feature, minlength=s.d_transcoder).cumsum(0).tolist()
    groups, pointers = picks.group.tolist(), picks.ptr.tolist()
    del windows, picks, inside, lengths, ends
    with _no_cycle_collection():
        for first in range(0, s.d_transcoder, _CHUNK_FEATURES):
            chunk = range(first, min(first + _CHUNK_FEATURES, s.d_transcoder))
            a, b = feature_ends[first - 1] if first else 0, feature_ends[chunk[-1]]
            lo, hi = (starts[a], ends_at[b - 1]) if a < b else (0, 0)
            flat_names = name_of[kept[lo:hi].numpy()].tolist()
            flat_values = _round_sig(kept_values[lo:hi], 4).tolist()
            for f in chunk:
                feature: Feature = {
                    "index": f,
                    "transcoder_id": f"layer_{layer}",
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
                if n_fire[f] == 0:
                    yield feature
                    continue
                feature["act_min"] = float(act_min[f])
                feature["act_max"] = float(act_max[f])
                feature["act_mean"] = total[f] / n_fire[f]
                feature["activation_frequency"] = n_fire[f] / counted
                step = R[f] / s.fine_bins * widths[f]
                feature["histogram"] = {
                    "edges": [step * i for i in range(s.histogram_bins + 1)],
                    "counts": hist_counts[f],
                }
                quantiles: list[dict[str, Any]] = [
                    {"quantile_name": "Top activations", "examples": []}
                ]
                quantiles += [
                    {"quantile_name": f"Subsample Interval {i}", "examples": []}
                    for i in range(s.n_intervals)
                ]
                for i in range(feature_ends[f - 1] if f else 0, feature_ends[f]):
                    if repeated[i]:
                        continue
                    start, end = starts[i] - lo, ends_at[i] - lo
                    quantiles[groups[i] + 1]["examples"].append(
                        {
                            "tokens": flat_names[start:end],
                            "tokens_acts_list": flat_values[start:end],
                            "train_token_ind": centres[i],
                            "is_repeated_datapoint": False,
                            # Where the activating token is: context index in corpus
                            # order, position.
                            "corpus_context": pointers[i] // s.context,
                            "corpus_position": pointers[i] % s.context,
                        }
                    )
                feature["examples_quantiles"] = [q for q in quantiles if q["examples"]]
                feature["quantile_intervals"] = [
                    [edges[f][i], edges[f][i + 1]] for i in range(s.n_intervals)
                ]
                feature["quantile_values"] = [edges[f][i] for i in range(s.n_intervals)]
                yield feature


def _repeats_top(
    picks: _Picks, tokens: torch.Tensor, token_name: dict[int, str], context: int
) -> torch.Tensor:
    """(n,) True for the interval samples that repeat a top example of their feature though
    drawn from another token (the draw never takes a top example's own token): from the same
    context with an overlapping window (activating tokens at most ``width - 1`` apart), or
    showing the same tokens around the same activating token. Left out after the draw, so a band
    that drew such a token shows one sample fewer. ``tokens`` (n, width) are the picks' windows
    (-1 outside the context); two windows show the same when their rows of token *names* are
    equal (two ids may decode alike)."""
    n, width = tokens.shape
    top = (picks.group < 0).nonzero().squeeze(1)  # by ascending feature (`_picks`)
    sample = (picks.group >= 0).nonzero().squeeze(1)
    repeated = torch.zeros(n, dtype=torch.bool)
    if len(top) == 0 or len(sample) == 0:
        return repeated
    top_f = picks.feature[top]
    n_features = int(picks.feature.max()) + 1
    first = torch.searchsorted(top_f, torch.arange(n_features))
    count = torch.bincount(top_f, minlength=n_features)
    k = int(count.max())
    ctx, pos = picks.ptr // context, picks.ptr % context
    # Rows of name ids: equal rows <=> equal (tokens, train_token_ind); compared by a hash
    # first and then entry by entry where the hashes agree.
    name_id: dict[str, int] = {}
    canon = [-1] * (max(token_name, default=0) + 1)  # by token id, read by one index
    for t in sorted(token_name):
        canon[t] = name_id.setdefault(token_name[t], len(name_id))
    canon_of = torch.tensor(canon, dtype=torch.int32)

    def name_rows(index: torch.Tensor) -> torch.Tensor:
        ids = tokens[index]
        return torch.where(ids >= 0, canon_of[ids.clamp(min=0)], -1)

    # A chunk of picks at a time: the (samples, k) pairs of int64 temporaries were the output
    # phase's peak (about 13 MiB each at 80,000 samples, eight or so alive at once).
    h = torch.zeros(n, dtype=torch.long)
    for start in range(0, n, _REPEAT_ROWS):
        rows = name_rows(torch.arange(start, min(start + _REPEAT_ROWS, n)))
        for column in range(width):
            h[start : start + len(rows)] = (
                h[start : start + len(rows)] * 1000003 + rows[:, column] + 2
            ) % (2**31 - 1)
    for start in range(0, len(sample), _REPEAT_ROWS):
        part = sample[start : start + _REPEAT_ROWS]
        f = picks.feature[part]
        j = first[f][:, None] + torch.arange(k)[None, :]  # (part, k): its feature's top picks
        ok = torch.arange(k)[None, :] < count[f][:, None]
        j = top[j.clamp(max=len(top) - 1)]
        near = (ctx[j] == ctx[part][:, None]) & ((pos[j] - pos[part][:, None]).abs() <= width - 1)
        a, b = (ok & ~near & (h[j] == h[part][:, None])).nonzero(as_tuple=True)
        same = torch.zeros_like(near)
        same[a, b] = (name_rows(part[a]) == name_rows(j[a, b])).all(1)
        repeated[part] = (ok & (near | same)).any(1)
    return repeated


def write_layer(path: Path, features: Iterable[Feature]) -> None:
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
