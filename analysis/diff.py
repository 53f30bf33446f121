"""The difference between two attribution graphs of the same model and transcoder set.

Pure Python and numpy over two schema-v1 documents (``contract.graph_json``), no Django.

Positions are aligned first (``align_tokens``): a longest-common-subsequence match of the two
prompts' token strings (difflib, no junk heuristic), then, inside each replaced span, tokens
paired from the end of the span backwards (a word's last token is where the model has read the
whole word, so ``France`` pairs with ``Germany`` and the last token of a three-token city with the
last token of a one-token one); finally the two last positions are always paired, because both
graphs explain the prediction made there. Inserted and deleted tokens, and the extra leading
tokens of the longer side of a replaced span, are aligned with nothing.

A node of A and a node of B are the same node when they have the same identity at aligned
positions: a feature by (layer, index), an error node by its layer, a token by its vocabulary id,
a logit by its vocabulary id. Each node is then shared, only in A or only in B, with its
influence, activation (features) and probability (logits) on each side. "Only in A" means
"not in B's pruned graph": the feature may be inactive in B or active but pruned away; the graph
files cannot tell which, so the missing side's activation is unknown (None). Influence is the
graphs' cumulative-influence fraction (lower is more influential); a node missing from a pruned
graph lies past its node threshold, so its missing side counts as 1.0, the bound of that scale,
in ``delta_influence``. An edge is the same edge when both its ends are the same nodes; a missing
edge counts as weight 0 in ``delta_weight`` (it held less than the pruning kept).

The work is split so that an API can keep the part that depends on one graph only:
``prepare(document)`` (parsing node ids and numbers, numbering the links' ends) once per graph,
``diff_prepared(a, b)`` per pair; ``diff_graphs`` does both.

For the causal test each feature node that differs carries ``patch``: the intervention that makes
A's feature what it is in B (``set`` to B's activation at A's position; ``ablate`` for a feature
only in A), in the steering API's terms (steering/serializers.py); nodes at B's positions that
have no partner in A, and position 0, cannot be patched.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import itemgetter
from typing import Any

import numpy as np

from contract.node_ids import Kind, kind_of, parse_node_id

SHARED = "shared"
ONLY_A = "only_a"
ONLY_B = "only_b"
STATUSES = (SHARED, ONLY_A, ONLY_B)

# An activation that moved less than this (relative to its size) is the same activation: both
# graphs' numbers are float32 sums, so identical computations can differ in the last bits.
ACTIVATION_TOLERANCE = 1e-4

_KIND_ORDER = {Kind.FEATURE: 0, Kind.ERROR: 1, Kind.TOKEN: 2, Kind.LOGIT: 3}


@dataclass(frozen=True)
class AlignedPair:
    a: int  # position in A
    b: int  # position in B
    same_token: bool


def align_tokens(tokens_a: Sequence[str], tokens_b: Sequence[str]) -> list[AlignedPair]:
    """Pairs of aligned positions, increasing on both sides (see the module docstring)."""
    matcher = difflib.SequenceMatcher(None, list(tokens_a), list(tokens_b), autojunk=False)
    pairs: list[tuple[int, int]] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            pairs.extend(zip(range(i1, i2), range(j1, j2), strict=True))
        elif tag == "replace":
            k = min(i2 - i1, j2 - j1)
            pairs.extend(zip(range(i2 - k, i2), range(j2 - k, j2), strict=True))
    if tokens_a and tokens_b:
        last_a, last_b = len(tokens_a) - 1, len(tokens_b) - 1
        pairs = [(i, j) for i, j in pairs if i != last_a and j != last_b]
        pairs.append((last_a, last_b))
    return [AlignedPair(i, j, tokens_a[i] == tokens_b[j]) for i, j in pairs]


@dataclass(frozen=True)
class PreparedGraph:
    """What a diff needs from one graph, independent of the other one: its prompt tokens, its
    nodes (those with a known kind and a well-formed id, in document order) as columns, and its
    links as indices into those nodes."""

    tokens: list[str]
    ids: list[str]
    keys: list[tuple[int, int, int, int]]  # (kind order, layer, number, own position)
    positions: list[int]  # ctx_idx
    labels: list[Any]
    influence: list[float | None]
    activation: list[float | None]
    probability: list[float | None]  # token_prob
    index: dict[str, int]
    link_source: np.ndarray  # (links,) int64 into the nodes
    link_target: np.ndarray
    link_weight: np.ndarray  # (links,) float64

    def approximate_bytes(self) -> int:
        """Memory held, roughly: the link arrays, and ~300 bytes a node for its strings,
        numbers and tuples (what a size-bounded cache counts)."""
        arrays = self.link_source.nbytes + self.link_target.nbytes + self.link_weight.nbytes
        return arrays + 300 * len(self.ids) + sum(map(len, self.ids))


def prepare(document: dict[str, Any]) -> PreparedGraph:
    """The per-graph half of a diff of schema-v1 ``document`` (module docstring)."""
    ids: list[str] = []
    keys: list[tuple[int, int, int, int]] = []
    nodes: list[dict[str, Any]] = []
    for node in document["nodes"]:
        kind = kind_of(node.get("feature_type"))
        if kind is None:
            continue
        parsed = parse_node_id(node["node_id"], kind)
        if parsed is None:
            continue
        layer = -1 if parsed.layer is None else parsed.layer
        ids.append(node["node_id"])
        keys.append((_KIND_ORDER[kind], layer, parsed.number, parsed.pos))
        nodes.append(node)
    index = {node_id: i for i, node_id in enumerate(ids)}
    source, target, weight = _link_arrays(document["links"], index)
    return PreparedGraph(
        tokens=list(document["metadata"]["prompt_tokens"]),
        ids=ids,
        keys=keys,
        positions=[int(node["ctx_idx"]) for node in nodes],
        labels=[node.get("clerp") for node in nodes],
        influence=[_number(node, "influence") for node in nodes],
        activation=[_number(node, "activation") for node in nodes],
        probability=[_number(node, "token_prob") for node in nodes],
        index=index,
        link_source=source,
        link_target=target,
        link_weight=weight,
    )


def _number(node: dict[str, Any], field: str) -> float | None:
    value = node.get(field)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _delta(
    a: float | None, b: float | None, *, in_a: bool, in_b: bool, missing: float | None
) -> float | None:
    """b - a, a node's missing side counted as ``missing``; None when a side is unknown."""
    a = a if in_a else missing
    b = b if in_b else missing
    return None if a is None or b is None else b - a


_KINDS = [Kind.FEATURE, Kind.ERROR, Kind.TOKEN, Kind.LOGIT]


def _patch(record: dict[str, Any]) -> dict[str, Any] | None:
    """The intervention that makes A's feature what B's graph says it is (None: nothing to do
    or nothing possible)."""
    if record["kind"] != Kind.FEATURE or record["pos_a"] is None or record["pos_a"] < 1:
        return None
    where = {"layer": record["layer"], "position": record["pos_a"], "feature": record["feature"]}
    if record["status"] == ONLY_A:
        return {**where, "action": "ablate"}
    act_a, act_b = record["activation_a"], record["activation_b"]
    if act_b is None:
        return None
    if act_a is not None and abs(act_b - act_a) <= ACTIVATION_TOLERANCE * max(1.0, abs(act_a)):
        return None
    return {**where, "action": "set", "value": act_b}


def _link_arrays(
    links: list[dict[str, Any]], index: dict[str, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each link's source and target as indices into ``index``'s nodes, and its weight; links to
    nodes the diff does not know are left out."""
    count = len(links)
    # map() over C callables: a Python-level loop over every link would cost most of the diff.
    ends = [
        np.fromiter(
            map(index.get, map(itemgetter(end), links), repeat(-1)), dtype=np.int64, count=count
        )
        for end in ("source", "target")
    ]
    weights = np.fromiter(map(itemgetter("weight"), links), dtype=np.float64, count=count)
    ok = (ends[0] >= 0) & (ends[1] >= 0)
    return ends[0][ok], ends[1][ok], weights[ok]


@dataclass
class GraphDiff:
    """``nodes`` sorted by |delta influence| (unknown last), ``edges`` by |delta weight|; an
    edge's ``source`` and ``target`` index ``nodes``."""

    alignment: list[AlignedPair]
    nodes: list[dict[str, Any]]
    edges: list[dict[str, Any]]
    edges_total: int
    summary: dict[str, dict[str, int]]


def diff_graphs(a: dict[str, Any], b: dict[str, Any], *, max_edges: int | None = None) -> GraphDiff:
    """The diff of graph documents ``a`` and ``b`` (module docstring); ``max_edges`` keeps only
    the edges that changed most (None: all)."""
    return diff_prepared(prepare(a), prepare(b), max_edges=max_edges)


def diff_prepared(a: PreparedGraph, b: PreparedGraph, *, max_edges: int | None = None) -> GraphDiff:
    """``diff_graphs`` of two prepared graphs."""
    alignment = align_tokens(a.tokens, b.tokens)
    frame = {p.b: p.a for p in alignment}
    # B's keys in A's position frame; a position with no partner gets a key no node of A can
    # have (a negative position).
    keys_b = [(k, layer, number, frame.get(pos, -1 - pos)) for k, layer, number, pos in b.keys]

    # Unified numbering: A's nodes, then B's nodes that A lacks.
    where_a = {key: i for i, key in enumerate(a.keys)}
    unified_b = np.empty(len(keys_b), dtype=np.int64)
    pairs: list[tuple[int | None, int | None]] = [(i, None) for i in range(len(a.keys))]
    for j, key in enumerate(keys_b):
        i = where_a.get(key)
        if i is None:
            unified_b[j] = len(pairs)
            pairs.append((None, j))
        else:
            unified_b[j] = i
            pairs[i] = (i, j)

    records = [_record(a, b, keys_b, i, j) for i, j in pairs]
    order = sorted(
        range(len(records)),
        key=lambda u: (
            records[u]["delta_influence"] is None,
            -abs(records[u]["delta_influence"] or 0.0),
            _KINDS.index(records[u]["kind"]),
        ),
    )
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    nodes = [records[u] for u in order]

    n = max(len(pairs), 1)
    # Each link as source * n + target in the unified numbering (A's nodes are numbered as
    # they are in A).
    keys_a = a.link_source * n + a.link_target
    keys_b_links = unified_b[b.link_source] * n + unified_b[b.link_target]
    # One sort for both graphs; a link given twice in one graph counts once, weights summed.
    keys, inverse = np.unique(np.concatenate([keys_a, keys_b_links]), return_inverse=True)
    at_a, at_b = inverse[: len(keys_a)], inverse[len(keys_a) :]
    w_a = np.bincount(at_a, weights=a.link_weight, minlength=len(keys))
    w_b = np.bincount(at_b, weights=b.link_weight, minlength=len(keys))
    in_a = np.bincount(at_a, minlength=len(keys)) > 0
    in_b = np.bincount(at_b, minlength=len(keys)) > 0
    change = w_b - w_a
    picked = _most_changed(change, max_edges)
    edges = [
        {
            "source": int(rank[keys[e] // n]),
            "target": int(rank[keys[e] % n]),
            "status": SHARED if in_a[e] and in_b[e] else ONLY_A if in_a[e] else ONLY_B,
            "weight_a": float(w_a[e]) if in_a[e] else None,
            "weight_b": float(w_b[e]) if in_b[e] else None,
            "delta_weight": float(change[e]),
        }
        for e in picked.tolist()
    ]
    summary = _summary(nodes, in_a, in_b)
    return GraphDiff(alignment, nodes, edges, len(keys), summary)


def _most_changed(change: np.ndarray, limit: int | None) -> np.ndarray:
    """Indices of the ``limit`` largest |change| (None: all), largest first, ties in index
    order: the first ``limit`` of a stable sort, found by sorting only the candidates that a
    partition leaves (all those at least as large as the limit-th)."""
    order = -np.abs(change)
    if limit is not None and limit < len(order):
        if limit == 0:
            return np.empty(0, dtype=np.int64)
        kth = np.partition(order, limit - 1)[limit - 1]
        candidates = np.flatnonzero(order <= kth)
        return candidates[np.argsort(order[candidates], kind="stable")][:limit]
    return np.argsort(order, kind="stable")


def _record(
    a: PreparedGraph,
    b: PreparedGraph,
    keys_b: list[tuple[int, int, int, int]],
    i: int | None,
    j: int | None,
) -> dict[str, Any]:
    in_a, in_b = i is not None, j is not None
    kind_number, layer, number, _ = a.keys[i] if i is not None else keys_b[j]  # type: ignore[index]
    kind = _KINDS[kind_number]
    pos_a = a.positions[i] if i is not None else None
    pos_b = b.positions[j] if j is not None else None
    status = SHARED if in_a and in_b else ONLY_A if in_a else ONLY_B
    if j is not None and i is None:
        # A position in A's frame, when B's position has a partner (a patch needs it).
        frame_pos = keys_b[j][3]
        pos_a = frame_pos if frame_pos >= 0 else None
    influence_a = a.influence[i] if i is not None else None
    influence_b = b.influence[j] if j is not None else None
    activation_a = a.activation[i] if i is not None else None
    activation_b = b.activation[j] if j is not None else None
    is_logit = kind is Kind.LOGIT
    label = a.labels[i] if i is not None else b.labels[j]  # type: ignore[index]
    record: dict[str, Any] = {
        "kind": kind,
        "status": status,
        "id_a": a.ids[i] if i is not None else None,
        "id_b": b.ids[j] if j is not None else None,
        "layer": layer if kind is not Kind.TOKEN else None,
        "feature": number if kind is Kind.FEATURE else None,
        "token": number if kind in (Kind.TOKEN, Kind.LOGIT) else None,
        "pos_a": pos_a,
        "pos_b": pos_b,
        "label": label or "",
        "influence_a": influence_a,
        "influence_b": influence_b,
        "delta_influence": _delta(influence_a, influence_b, in_a=in_a, in_b=in_b, missing=1.0),
        "activation_a": activation_a,
        "activation_b": activation_b,
        "delta_activation": _delta(activation_a, activation_b, in_a=in_a, in_b=in_b, missing=None),
        "probability_a": a.probability[i] if is_logit and i is not None else None,
        "probability_b": b.probability[j] if is_logit and j is not None else None,
    }
    record["patch"] = _patch(record)
    return record


def _summary(nodes: list[dict[str, Any]], in_a: np.ndarray, in_b: np.ndarray) -> dict[str, Any]:
    counts: dict[str, dict[str, int]] = {kind.value: dict.fromkeys(STATUSES, 0) for kind in _KINDS}
    for node in nodes:
        counts[node["kind"]][node["status"]] += 1
    shared = int(np.count_nonzero(in_a & in_b))
    counts["edges"] = {
        SHARED: shared,
        ONLY_A: int(np.count_nonzero(in_a)) - shared,
        ONLY_B: int(np.count_nonzero(in_b)) - shared,
    }
    return counts
