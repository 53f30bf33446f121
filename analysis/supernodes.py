"""Supernode suggestions: groups of a graph's features that play the same role.

``suggest(graph, ...)`` is the one entry point. It compares every pair of candidate features at
the same or neighbouring prompt positions on up to five signals, each a cosine similarity in
[-1, 1]:

- ``edges_in`` / ``edges_out``: the features' incoming and outgoing edge weights in the graph,
  as vectors over the graph's nodes (the same sources, the same targets, the same signs);
- ``decoder``: their decoder directions (what they write into the residual stream), when the
  caller has them;
- ``explanation``: their explanations as bags of words (weighted by how rare a word is among the
  graph's explanations, so "fires on" counts for nothing), when there are any;
- ``logits``: their top logit tokens as bags of tokens (the dashboards' top logits).

A pair's similarity is the weighted mean of the signals both features have, minus a structure
penalty: ``layer_penalty`` for every layer between them beyond the first and ``position_penalty``
for a neighbouring position (further positions are never compared). Features are then grouped by
average linkage, stopping when the best remaining merge falls below ``threshold``: a group spans
several layers only when its members are similar enough to pay the penalty. Every group of two
or more is a suggestion, with a name (the top-logit tokens its members share, else the most
typical explanation, else where it sits), a confidence (the mean similarity of its pairs) and the
mean of each signal over its pairs.

Pure numpy and Python, no Django: the web process serves it, the evaluation runs it as is.
"""

from __future__ import annotations

import math
import re
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from operator import itemgetter
from typing import Any

import numpy as np

from analysis import blas
from contract.node_ids import Kind, kind_of, parse_node_id

SIGNALS = ("edges_in", "edges_out", "decoder", "explanation", "logits")
# Edge profiles over at most this many graph nodes, and decoders of at most this many floats,
# are compared exactly; larger ones are hashed into SKETCH_DIM signed buckets (a count sketch:
# each node or coordinate adds to one bucket with a random sign, which keeps inner products on
# average, cosines to within about ±1/sqrt(SKETCH_DIM)), so the cost grows with the edges and
# the decoder width, not with their product with the number of features.
EXACT_DIM = 1024
SKETCH_DIM = 256
# Bags of words and tokens are hashed into this many buckets.
TEXT_DIM = 512
NAME_CHARS = 120


@dataclass(frozen=True)
class FeatureText:
    """What is written about a feature: its best explanation and its top logit tokens."""

    explanation: str = ""
    top_logits: tuple[str, ...] = ()


@dataclass(frozen=True)
class Settings:
    # Tuned on three of the demo graphs (benchmarks/supernodes_eval.py, docs/analysis.md).
    threshold: float = 0.2  # the lowest mean similarity a group may have
    layer_penalty: float = 0.1  # per layer apart beyond the first
    position_penalty: float = 0.3  # for neighbouring positions
    # How much each signal counts where both features have it. Outgoing edges count half:
    # at the last position nearly every feature feeds the same logits, so they separate little.
    weights: Mapping[str, float] = field(
        default_factory=lambda: {
            "edges_in": 1.0,
            "edges_out": 0.5,
            "decoder": 1.0,
            "explanation": 0.5,
            "logits": 1.0,
        }
    )


@dataclass(frozen=True)
class Suggestion:
    name: str
    members: list[str]  # node ids, by layer then position then id
    confidence: float  # mean adjusted similarity of the members' pairs, in [0, 1]
    evidence: dict[str, float | None]  # mean similarity per signal over pairs that have it
    layers: tuple[int, int]
    positions: tuple[int, int]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "members": self.members,
            "confidence": self.confidence,
            "evidence": self.evidence,
            "layers": list(self.layers),
            "positions": list(self.positions),
        }


@dataclass(frozen=True)
class Feature:
    node_id: str
    layer: int
    index: int
    pos: int


def feature_nodes(nodes: Iterable[Mapping[str, Any]]) -> list[Feature]:
    """The transcoder-feature nodes of a graph document's ``nodes``, in document order."""
    out = []
    for node in nodes:
        if kind_of(node.get("feature_type")) is not Kind.FEATURE:
            continue
        parsed = parse_node_id(str(node.get("node_id", "")), Kind.FEATURE)
        if parsed is None or parsed.layer is None:
            continue
        out.append(Feature(str(parsed), parsed.layer, parsed.number, parsed.pos))
    return out


def suggest(
    nodes: Sequence[Mapping[str, Any]],
    links: Sequence[Mapping[str, Any]],
    *,
    node_ids: Sequence[str] | None = None,
    decoders: Mapping[tuple[int, int], np.ndarray] | None = None,
    texts: Mapping[tuple[int, int], FeatureText] | None = None,
    tokens: Sequence[str] = (),
    settings: Settings | None = None,
) -> list[Suggestion]:
    """Suggested supernodes among the graph's features, most confident first.

    ``nodes``/``links``: the graph JSON's. ``node_ids``: only group these (the pinned nodes, or
    what the pruned view shows); edge profiles still use the whole graph. ``decoders`` and
    ``texts`` are keyed by (layer, feature index); features missing from them just lack that
    signal. ``tokens``: the prompt's tokens, for names that say where a group sits.
    """
    settings = settings or Settings()
    features = feature_nodes(nodes)
    if node_ids is not None:
        wanted = set(node_ids)
        features = [f for f in features if f.node_id in wanted]
    if len(features) < 2:
        return []
    with blas.one_thread():
        signals = _signals(features, nodes, links, decoders or {}, texts or {}, settings)
        groups = _cluster(features, signals, settings)
    out = [_describe(g, features, signals, settings, texts or {}, tokens) for g in groups]
    out.sort(key=lambda s: (-s.confidence, s.members))
    return out


# ---------------------------------------------------------------------------------------------
# Signals: one matrix of unit rows per signal (a zero row where a feature lacks it).


@dataclass
class _Signals:
    units: dict[str, np.ndarray]  # signal -> (n, dim) float32, unit rows or zeros
    has: dict[str, np.ndarray]  # signal -> (n,) bool
    # Every signal side by side, scaled by the square root of its weight, so one matrix product
    # gives the weighted sum of cosines (``joined``) and another the weight both rows have.
    joined: np.ndarray  # (n, total dim) float32
    weight: np.ndarray  # (n, n signals) float32


def _unit_rows(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    norms = np.linalg.norm(matrix, axis=1)
    has = norms > 1e-12
    out = np.zeros(matrix.shape, dtype=np.float32)
    out[has] = matrix[has] / norms[has, None]
    return out, has


def _sketch_columns(matrix: np.ndarray) -> np.ndarray:
    """(n, d) -> (n, SKETCH_DIM): column j added, with a random sign, to bucket j % SKETCH_DIM."""
    n, d = matrix.shape
    width = -(-d // SKETCH_DIM) * SKETCH_DIM
    sign = np.random.default_rng(1).choice(np.array([-1.0, 1.0], dtype=np.float32), d)
    padded = np.zeros((n, width), dtype=np.float32)
    np.multiply(matrix, sign, out=padded[:, :d])
    return padded.reshape(n, width // SKETCH_DIM, SKETCH_DIM).sum(axis=1)


def _signals(
    features: list[Feature],
    nodes: Sequence[Mapping[str, Any]],
    links: Sequence[Mapping[str, Any]],
    decoders: Mapping[tuple[int, int], np.ndarray],
    texts: Mapping[tuple[int, int], FeatureText],
    settings: Settings,
) -> _Signals:
    raw: dict[str, np.ndarray] = {}
    raw["edges_in"], raw["edges_out"] = _edge_profiles(features, nodes, links)
    keys = [(f.layer, f.index) for f in features]
    if any(k in decoders for k in keys):
        dim = len(np.asarray(next(decoders[k] for k in keys if k in decoders)).reshape(-1))
        matrix = np.zeros((len(keys), dim), dtype=np.float32)
        for i, k in enumerate(keys):
            if k in decoders:
                matrix[i] = np.asarray(decoders[k], dtype=np.float32).reshape(-1)
        raw["decoder"] = matrix if dim <= EXACT_DIM else _sketch_columns(matrix)
    explanations = [_words(texts[k].explanation) if k in texts else [] for k in keys]
    if any(explanations):
        raw["explanation"] = _bags(explanations, idf=True)
    top_logits = [[t.strip() for t in texts[k].top_logits] if k in texts else [] for k in keys]
    if any(top_logits):
        raw["logits"] = _bags(top_logits, idf=False)
    units, has = {}, {}
    for name, matrix in raw.items():
        if settings.weights.get(name, 0.0) > 0:
            units[name], has[name] = _unit_rows(matrix)
    roots = {name: np.float32(math.sqrt(settings.weights[name])) for name in units}
    joined = np.hstack([roots[name] * unit for name, unit in units.items()])
    weight = np.stack([roots[name] * has[name].astype(np.float32) for name in units], axis=1)
    return _Signals(units, has, joined, weight)


def _edge_profiles(
    features: list[Feature],
    nodes: Sequence[Mapping[str, Any]],
    links: Sequence[Mapping[str, Any]],
) -> tuple[np.ndarray, np.ndarray]:
    """(n, dim) incoming and outgoing weight profiles of the features over the graph's nodes."""
    index = {str(node.get("node_id")): i for i, node in enumerate(nodes)}
    n_nodes = len(index)
    src, tgt, w = _link_arrays(index, links)
    ok = (src >= 0) & (tgt >= 0) & np.isfinite(w)
    src, tgt, w = src[ok], tgt[ok], w[ok]
    rows = np.full(n_nodes, -1, dtype=np.int64)
    for row, f in enumerate(features):
        rows[index[f.node_id]] = row
    if n_nodes <= EXACT_DIM:
        bucket, dim = np.arange(n_nodes), n_nodes
        sign = np.ones(n_nodes)
    else:
        rng = np.random.default_rng(0)
        bucket, dim = rng.integers(0, SKETCH_DIM, n_nodes), SKETCH_DIM
        sign = rng.choice(np.array([-1.0, 1.0]), n_nodes)
    incoming = _profile(rows[tgt], bucket[src], w * sign[src], len(features), dim)
    outgoing = _profile(rows[src], bucket[tgt], w * sign[tgt], len(features), dim)
    return incoming, outgoing


def _link_arrays(
    index: Mapping[str, int], links: Sequence[Mapping[str, Any]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each link's source and target in ``index`` (-1: no such node) and its weight (NaN: not a
    number). map() over C callables where every link has string ends (a stored graph's always
    do): a Python loop over 150,000 links was a third of the time of suggestions."""
    try:
        ends = [list(map(itemgetter(end), links)) for end in ("source", "target")]
        values = list(map(itemgetter("weight"), links))
    except (KeyError, TypeError):
        ends = [[link.get(end) for link in links] for end in ("source", "target")]
        values = [link.get("weight") for link in links]
    get = index.get
    src, tgt = (
        np.fromiter(map(get, ids, repeat(-1)), dtype=np.int64, count=len(ids))
        if set(map(type, ids)) <= {str}
        # Ids that are not strings (a malformed link) miss the index like unknown ones.
        else np.asarray([get(str(i), -1) for i in ids], dtype=np.int64)
        for ids in ends
    )
    return src, tgt, _weights(values)


def _weights(values: list[Any]) -> np.ndarray:
    """Link weights as floats; NaN for anything that is not a number (those links are dropped)."""
    if set(map(type, values)) <= {float}:
        return np.asarray(values, dtype=np.float64)
    return np.asarray(
        [
            float(v) if isinstance(v, int | float) and not isinstance(v, bool) else math.nan
            for v in values
        ],
        dtype=np.float64,
    )


def _profile(rows: np.ndarray, buckets: np.ndarray, w: np.ndarray, n: int, dim: int) -> np.ndarray:
    """Each edge's weight added to its feature's row at the other end's bucket."""
    keep = rows >= 0
    flat = rows[keep] * dim + buckets[keep]
    return np.bincount(flat, weights=w[keep], minlength=n * dim).reshape(n, dim).astype(np.float32)


_WORD = re.compile(r"[a-z0-9]+|[^\sa-z0-9]+")
# Words every token-pattern or LLM explanation uses; they say nothing about the feature.
_STOP = frozenset(
    [
        "a",
        "an",
        "and",
        "after",
        "also",
        "the",
        "of",
        "on",
        "in",
        "is",
        "are",
        "to",
        "this",
        "that",
        "fires",
        "fire",
        "firing",
        "token",
        "tokens",
        "word",
        "words",
        "when",
        "it",
        "its",
    ]
)


def _words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _STOP and w.isalnum()]


def _bucket(term: str) -> int:
    return zlib.crc32(term.encode()) % TEXT_DIM


def _bags(bags: list[list[str]], *, idf: bool) -> np.ndarray:
    """Hashed bags of terms; with ``idf``, a term counts log(n / documents containing it).
    Counted with bincount over (bag, bucket) cells rather than term by term in Python."""
    ids: dict[str, int] = {}
    terms = np.asarray([ids.setdefault(t, len(ids)) for bag in bags for t in bag], dtype=np.int64)
    rows = np.repeat(np.arange(len(bags), dtype=np.int64), [len(bag) for bag in bags])
    weight = None
    if idf and len(ids):
        documents = np.bincount(np.unique(rows * len(ids) + terms) % len(ids), minlength=len(ids))
        n = sum(1 for bag in bags if bag)
        weight = np.asarray([math.log((1 + n) / d) for d in documents.tolist()])[terms]
    buckets = np.asarray([_bucket(term) for term in ids], dtype=np.int64)
    cells = rows * TEXT_DIM + (buckets[terms] if len(ids) else terms)
    counts = np.bincount(cells, weights=weight, minlength=len(bags) * TEXT_DIM)
    return counts.reshape(len(bags), TEXT_DIM).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Grouping: average linkage within each position, then across neighbouring positions.


def _similarity(
    signals: _Signals, rows: np.ndarray, cols: np.ndarray, settings: Settings
) -> np.ndarray:
    """Weighted mean of the signals both features have, (len(rows), len(cols)); 0 where none."""
    num = signals.joined[rows] @ signals.joined[cols].T
    den = signals.weight[rows] @ signals.weight[cols].T
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def _layer_penalty(layers: np.ndarray, a: np.ndarray, b: np.ndarray, settings: Settings) -> Any:
    la, lb = layers[a].astype(np.float32), layers[b].astype(np.float32)
    gap = np.abs(la[:, None] - lb[None, :])
    gap -= 1
    np.maximum(gap, 0, out=gap)
    gap *= np.float32(settings.layer_penalty)
    return gap


def _cluster(features: list[Feature], signals: _Signals, settings: Settings) -> list[list[int]]:
    layers = np.asarray([f.layer for f in features])
    positions = np.asarray([f.pos for f in features])
    by_position: dict[int, np.ndarray] = {
        int(p): np.flatnonzero(positions == p) for p in np.unique(positions)
    }
    clusters: list[list[int]] = []
    for members in by_position.values():
        sim = _similarity(signals, members, members, settings)
        sim -= _layer_penalty(layers, members, members, settings)
        for group in _average_linkage(sim, settings.threshold):
            clusters.append([int(members[i]) for i in group])
    return _join_neighbouring_positions(clusters, positions, layers, signals, settings)


def _average_linkage(sim: np.ndarray, threshold: float) -> list[list[int]]:
    """Groups of ``sim``'s rows: merge the pair of groups with the highest mean similarity until
    none reaches ``threshold``, ordered by their first row.

    Two groups whose rows have no pair at or above the threshold have a mean below it, so no
    group ever spans two components of the graph "similarity >= threshold": each component is
    grouped on its own (most rows of a large graph are alone in theirs), with the same result.
    """
    linked = sim >= threshold
    np.fill_diagonal(linked, False)
    groups: list[list[int]] = []
    for component in _components(linked):
        if len(component) == 1:
            groups.append([int(component[0])])
            continue
        for group in _nearest_neighbour_chains(sim[np.ix_(component, component)], threshold):
            groups.append([int(component[i]) for i in group])
    groups.sort(key=itemgetter(0))
    return groups


def _components(linked: np.ndarray) -> list[np.ndarray]:
    """The connected components of the graph with adjacency ``linked``, each sorted."""
    seen = np.logical_not(linked.any(axis=1))
    out = [np.asarray([i]) for i in np.flatnonzero(seen).tolist()]
    for start in np.flatnonzero(~seen).tolist():
        if seen[start]:
            continue
        seen[start] = True
        members, frontier = [start], np.asarray([start])
        while len(frontier):
            frontier = np.flatnonzero(linked[frontier].any(axis=0) & ~seen)
            seen[frontier] = True
            members.extend(frontier.tolist())
        out.append(np.sort(np.asarray(members, dtype=np.int64)))
    return out


def _nearest_neighbour_chains(sim: np.ndarray, threshold: float) -> list[list[int]]:
    """Average linkage of ``sim``'s rows cut at ``threshold``, by nearest-neighbour chains
    (O(n²) for n rows)."""
    n = len(sim)
    if n == 1:
        return [[0]]
    s = sim.astype(np.float64, copy=True)
    np.fill_diagonal(s, -np.inf)
    size = np.ones(n)
    alive = np.ones(n, dtype=bool)
    merges: list[tuple[float, int, int]] = []
    chain: list[int] = []
    remaining = n
    while remaining > 1:
        if not chain:
            chain.append(int(np.flatnonzero(alive)[0]))
        a = chain[-1]
        b = int(np.argmax(s[a]))
        if len(chain) > 1 and s[a, chain[-2]] >= s[a, b]:
            b = chain[-2]
        if len(chain) > 1 and b == chain[-2]:
            chain.pop()
            chain.pop()
            merges.append((float(s[a, b]), a, b))
            # Lance-Williams for average linkage; the merged group keeps a's row.
            merged = (size[a] * s[a] + size[b] * s[b]) / (size[a] + size[b])
            s[a], s[:, a] = merged, merged
            s[b], s[:, b] = -np.inf, -np.inf
            s[a, a] = -np.inf
            size[a] += size[b]
            alive[b] = False
            remaining -= 1
        else:
            chain.append(b)
    # Average linkage is reducible, so the merges above the threshold give the same groups as
    # merging greedily until the best is below it.
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for height, a, b in merges:
        if height >= threshold:
            parent[root(b)] = root(a)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(root(i), []).append(i)
    return list(groups.values())


def _join_neighbouring_positions(
    clusters: list[list[int]],
    positions: np.ndarray,
    layers: np.ndarray,
    signals: _Signals,
    settings: Settings,
) -> list[list[int]]:
    """Join groups at neighbouring positions whose mean cross similarity, after the position
    penalty, still reaches the threshold; each group joins its best partner at most once per
    pair of positions, best pairs first."""
    by_position: dict[int, list[int]] = {}
    for c, members in enumerate(clusters):
        by_position.setdefault(int(positions[members[0]]), []).append(c)
    parent = list(range(len(clusters)))

    def root(c: int) -> int:
        while parent[c] != c:
            parent[c] = parent[parent[c]]
            c = parent[c]
        return c

    for p in sorted(by_position):
        here, there = by_position[p], by_position.get(p + 1)
        if not there:
            continue
        rows = np.asarray([i for c in here for i in clusters[c]])
        cols = np.asarray([i for c in there for i in clusters[c]])
        sim = _similarity(signals, rows, cols, settings)
        sim -= _layer_penalty(layers, rows, cols, settings) + settings.position_penalty
        # Mean similarity between every group here and every group there: rows and columns
        # are laid out group by group, so summing runs of them sums each group.
        here_sizes = np.asarray([len(clusters[c]) for c in here])
        there_sizes = np.asarray([len(clusters[c]) for c in there])
        sums = np.add.reduceat(sim, np.r_[0, np.cumsum(here_sizes)[:-1]], axis=0)
        sums = np.add.reduceat(sums, np.r_[0, np.cumsum(there_sizes)[:-1]], axis=1)
        means = sums / np.outer(here_sizes, there_sizes)
        used_here: set[int] = set()
        used_there: set[int] = set()
        for flat in np.argsort(-means, axis=None):
            i, j = divmod(int(flat), len(there))
            if means[i, j] < settings.threshold:
                break
            if i in used_here or j in used_there:
                continue
            used_here.add(i)
            used_there.add(j)
            parent[root(there[j])] = root(here[i])
    joined: dict[int, list[int]] = {}
    for c in range(len(clusters)):
        joined.setdefault(root(c), []).extend(clusters[c])
    return [members for members in joined.values() if len(members) > 1]


# ---------------------------------------------------------------------------------------------
# Describing a group


def _pair_sum(matrix: np.ndarray) -> float:
    """Sum over the pairs of rows of their inner products (O(n d), not O(n² d))."""
    total = matrix.sum(axis=0)
    return float(total @ total - np.einsum("ij,ij->", matrix, matrix))


def _describe(
    group: list[int],
    features: list[Feature],
    signals: _Signals,
    settings: Settings,
    texts: Mapping[tuple[int, int], FeatureText],
    tokens: Sequence[str],
) -> Suggestion:
    members = sorted(group, key=lambda i: (features[i].layer, features[i].pos, features[i].index))
    idx = np.asarray(members)
    evidence: dict[str, float | None] = {name: None for name in SIGNALS}
    for name, unit in signals.units.items():
        rows = idx[signals.has[name][idx]]
        if len(rows) > 1:
            value = _pair_sum(unit[rows]) / (len(rows) * (len(rows) - 1))
            evidence[name] = round(value, 3)
    chosen = [features[i] for i in members]
    m = len(chosen)
    pairs = m * (m - 1)
    # The signals' weighted mean over all pairs, less the mean structure penalty.
    weight = _pair_sum(signals.weight[idx])
    mean = _pair_sum(signals.joined[idx]) / weight if weight > 0 else 0.0
    layer_counts = Counter(f.layer for f in chosen)
    position_counts = Counter(f.pos for f in chosen)
    mean -= (
        settings.layer_penalty
        * sum(
            na * nb * max(abs(a - b) - 1, 0)
            for a, na in layer_counts.items()
            for b, nb in layer_counts.items()
        )
        / pairs
    )
    mean -= settings.position_penalty * (
        1 - sum(n * (n - 1) for n in position_counts.values()) / pairs
    )
    return Suggestion(
        name=_name(chosen, signals, idx, texts, tokens),
        members=[f.node_id for f in chosen],
        confidence=round(min(max(mean, 0.0), 1.0), 3),
        evidence=evidence,
        layers=(min(f.layer for f in chosen), max(f.layer for f in chosen)),
        positions=(min(f.pos for f in chosen), max(f.pos for f in chosen)),
    )


def _name(
    chosen: list[Feature],
    signals: _Signals,
    idx: np.ndarray,
    texts: Mapping[tuple[int, int], FeatureText],
    tokens: Sequence[str],
) -> str:
    """The top-logit tokens most members share, else the first clause of the explanation most
    like the others', else the layers and the token the group sits at. Shared logits come first:
    they say what the group promotes, where an explanation often says only where it fires."""
    counts = Counter(
        token.strip()
        for f in chosen
        for token in dict.fromkeys(texts.get((f.layer, f.index), FeatureText()).top_logits[:10])
        if token.strip()
    )
    shared = [token for token, n in counts.most_common(3) if n >= 2]
    if shared:
        return _clip("says " + " / ".join(shared))
    explained = [
        k
        for k, f in enumerate(chosen)
        if texts.get((f.layer, f.index), FeatureText()).explanation.strip()
    ]
    if explained and "explanation" in signals.units:
        unit = signals.units["explanation"][idx[explained]]
        typical = chosen[explained[int(np.argmax(unit @ unit.sum(axis=0)))]]
        return _clip(texts[(typical.layer, typical.index)].explanation.split(";")[0])
    lo, hi = min(f.layer for f in chosen), max(f.layer for f in chosen)
    where = f"L{lo}" if lo == hi else f"L{lo}–L{hi}"
    pos = chosen[0].pos
    if 0 <= pos < len(tokens) and all(f.pos == pos for f in chosen):
        where += f" at “{tokens[pos].strip() or tokens[pos]}”"
    return _clip(f"{where} features")


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= NAME_CHARS else text[: NAME_CHARS - 1] + "…"
