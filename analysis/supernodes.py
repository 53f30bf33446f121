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
from typing import Any

import numpy as np

from contract.node_ids import Kind, kind_of, parse_node_id

SIGNALS = ("edges_in", "edges_out", "decoder", "explanation", "logits")
# Profiles over at most this many graph nodes are exact; larger graphs are projected onto
# PROFILE_DIM random directions (Johnson-Lindenstrauss: cosines kept to about ±1/sqrt(dim)),
# so the cost grows with the edges, not with nodes squared.
EXACT_PROFILE_NODES = 1024
PROFILE_DIM = 256
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


def _unit_rows(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    norms = np.linalg.norm(matrix, axis=1)
    has = norms > 1e-12
    out = np.zeros_like(matrix, dtype=np.float32)
    out[has] = matrix[has] / norms[has, None]
    return out, has


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
        dim = len(next(iter(decoders[k] for k in keys if k in decoders)))
        raw["decoder"] = np.stack(
            [
                np.asarray(decoders[k], dtype=np.float32).reshape(-1)
                if k in decoders
                else np.zeros(dim, np.float32)
                for k in keys
            ]
        )
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
    return _Signals(units, has)


def _edge_profiles(
    features: list[Feature],
    nodes: Sequence[Mapping[str, Any]],
    links: Sequence[Mapping[str, Any]],
) -> tuple[np.ndarray, np.ndarray]:
    """(n, dim) incoming and outgoing weight profiles of the features over the graph's nodes."""
    index = {str(node.get("node_id")): i for i, node in enumerate(nodes)}
    row_of = {f.node_id: i for i, f in enumerate(features)}
    n_nodes = len(index)
    sources, targets, weights = [], [], []
    for link in links:
        s, t = index.get(str(link.get("source"))), index.get(str(link.get("target")))
        w = link.get("weight")
        if s is None or t is None or not isinstance(w, int | float) or not math.isfinite(w):
            continue
        sources.append(s)
        targets.append(t)
        weights.append(float(w))
    src = np.asarray(sources, dtype=np.int64)
    tgt = np.asarray(targets, dtype=np.int64)
    w = np.asarray(weights, dtype=np.float32)
    rows = np.full(n_nodes, -1, dtype=np.int64)
    for node_id, row in row_of.items():
        rows[index[node_id]] = row
    if n_nodes <= EXACT_PROFILE_NODES:
        projection = None
    else:
        rng = np.random.default_rng(0)
        projection = rng.standard_normal((n_nodes, PROFILE_DIM), dtype=np.float32)
    incoming = _profile(rows[tgt], src, w, len(features), n_nodes, projection)
    outgoing = _profile(rows[src], tgt, w, len(features), n_nodes, projection)
    return incoming, outgoing


def _profile(
    rows: np.ndarray,
    others: np.ndarray,
    w: np.ndarray,
    n_rows: int,
    n_nodes: int,
    projection: np.ndarray | None,
) -> np.ndarray:
    """Sum over edges of weight × (the other end's basis vector) into each edge's row."""
    keep = rows >= 0
    rows, others, w = rows[keep], others[keep], w[keep]
    if projection is None:
        out = np.zeros((n_rows, n_nodes), dtype=np.float32)
        np.add.at(out, (rows, others), w)
        return out
    out = np.zeros((n_rows, projection.shape[1]), dtype=np.float32)
    order = np.argsort(rows, kind="stable")
    rows, others, w = rows[order], others[order], w[order]
    # In chunks, so the (edges, dim) product stays small.
    chunk = 16384
    for start in range(0, len(rows), chunk):
        r = rows[start : start + chunk]
        contrib = projection[others[start : start + chunk]] * w[start : start + chunk, None]
        firsts = np.flatnonzero(np.r_[True, r[1:] != r[:-1]])
        out[r[firsts]] += np.add.reduceat(contrib, firsts, axis=0)
    return out


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
    """Hashed bags of terms; with ``idf``, a term counts log(n / documents containing it)."""
    out = np.zeros((len(bags), TEXT_DIM), dtype=np.float32)
    documents = Counter(term for bag in bags for term in set(bag))
    n = sum(1 for bag in bags if bag)
    for i, bag in enumerate(bags):
        for term, count in Counter(bag).items():
            weight = math.log((1 + n) / documents[term]) if idf else 1.0
            out[i, _bucket(term)] += count * weight
    return out


# ---------------------------------------------------------------------------------------------
# Grouping: average linkage within each position, then across neighbouring positions.


def _similarity(
    signals: _Signals, rows: np.ndarray, cols: np.ndarray, settings: Settings
) -> np.ndarray:
    """Weighted mean of the signals both features have, (len(rows), len(cols)); 0 where none."""
    num = np.zeros((len(rows), len(cols)), dtype=np.float32)
    den = np.zeros_like(num)
    for name, unit in signals.units.items():
        weight = np.float32(settings.weights[name])
        num += weight * (unit[rows] @ unit[cols].T)
        has = signals.has[name].astype(np.float32)
        den += weight * np.outer(has[rows], has[cols])
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def _layer_penalty(layers: np.ndarray, a: np.ndarray, b: np.ndarray, settings: Settings) -> Any:
    gap = np.abs(layers[a][:, None] - layers[b][None, :])
    return settings.layer_penalty * np.maximum(gap - 1, 0)


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
    none reaches ``threshold``. Nearest-neighbour chains, so O(n²) for n rows."""
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
        # Mean similarity between every group here and every group there.
        left = np.zeros((len(here), len(rows)), dtype=np.float32)
        col = 0
        for k, c in enumerate(here):
            left[k, col : col + len(clusters[c])] = 1 / len(clusters[c])
            col += len(clusters[c])
        right = np.zeros((len(cols), len(there)), dtype=np.float32)
        col = 0
        for k, c in enumerate(there):
            right[col : col + len(clusters[c]), k] = 1 / len(clusters[c])
            col += len(clusters[c])
        means = left @ sim @ right
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


def _mean_pair_cosine(unit: np.ndarray) -> float | None:
    """Mean cosine over the pairs of these unit rows (O(n d), not O(n² d))."""
    m = len(unit)
    if m < 2:
        return None
    total = unit.sum(axis=0)
    return float((total @ total - m) / (m * (m - 1)))


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
        value = _mean_pair_cosine(unit[rows])
        evidence[name] = None if value is None else round(value, 3)
    sim = _similarity(signals, idx, idx, settings)
    layers = np.asarray([f.layer for f in features])
    positions = np.asarray([f.pos for f in features])
    sim -= _layer_penalty(layers, idx, idx, settings)
    sim -= settings.position_penalty * (positions[idx][:, None] != positions[idx][None, :])
    m = len(idx)
    mean = float((sim.sum() - np.trace(sim)) / (m * (m - 1)))
    chosen = [features[i] for i in members]
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
