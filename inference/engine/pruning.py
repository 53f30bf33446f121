"""Pruning by influence on the logits, and the graph's replacement and completeness scores.

Semantics follow circuit-tracer's ``prune_graph`` and ``compute_graph_scores``:
- A row-normalised |adjacency| gives each edge's share of its target's input; a node's
  influence is the logit-probability-weighted sum over all paths (A + A^2 + ...) to the logits.
- Node pruning keeps the most influential nodes holding ``node_threshold`` of the total
  influence (tokens and logits always stay); edge pruning then keeps the highest-scoring edges
  (score = normalised weight x influence of its target) holding ``edge_threshold`` of the total
  score; finally features and errors left without outgoing edges, and features left without
  incoming edges, are dropped until nothing changes.
- ``influence`` per node is the cumulative-influence fraction: the share of total influence held
  by the nodes at least as influential as it (what the frontend calls a node's influence).

Only feature and logit rows can be non-zero, so everything works on that (rows x N) block, and
the edge threshold is found by a value histogram that narrows to the crossing bin before sorting
only the candidates in it, never all N^2 scores.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .graph import Graph

_HIST_BINS = 1024
_SORT_LIMIT = 1 << 16  # candidates sorted exactly once the crossing bin holds this few


@dataclass
class PruneResult:
    node_mask: torch.Tensor  # (N,) bool: nodes kept
    edge_targets: torch.Tensor  # (E,) int64 node indices of kept edges' targets
    edge_sources: torch.Tensor  # (E,) int64
    edge_weights: torch.Tensor  # (E,) float32 adjacency values of kept edges
    influence: torch.Tensor  # (N,) cumulative influence fraction of every node
    replacement_score: float
    completeness_score: float


def _row_block(graph: Graph) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the rows that can be non-zero (features, logits) and those rows."""
    n = graph.n_nodes
    rows = torch.cat([torch.arange(graph.n_features), torch.arange(n - graph.n_logits, n)])
    return rows, graph.adjacency[rows]


def _normalize(block: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    out = block.abs()
    out /= out.sum(dim=1, keepdim=True).clamp(min=eps)
    return out


def _influence(
    norm_block: torch.Tensor, rows: torch.Tensor, weights: torch.Tensor, max_iter: int = 1000
) -> torch.Tensor:
    """weights @ (A + A^2 + ...) for the normalised matrix whose non-zero rows are `rows`."""
    current = weights[rows] @ norm_block
    total = current.clone()
    for _ in range(max_iter):
        if not current.any():
            return total
        current = current[rows] @ norm_block
        total += current
    raise RuntimeError("influence did not converge; the adjacency has a cycle")


def cumulative_threshold(scores: torch.Tensor, threshold: float) -> float:
    """circuit-tracer's `find_threshold` without sorting every score.

    Returns the score at which the descending cumulative sum of `scores` first reaches
    `threshold` of their total. A value histogram narrows the search to the bin where the sum
    crosses, until few enough candidates remain to sort.
    """
    flat = scores.reshape(-1)
    if flat.numel() == 0:
        return 0.0
    target = threshold * float(flat.sum(dtype=torch.float64))
    lo, hi = 0.0, math.inf  # the answer lies in [lo, hi)
    above = 0.0  # sum of the scores >= hi
    while True:
        values = flat[(flat >= lo) & (flat < hi)].double()
        if len(values) <= _SORT_LIMIT or float(values.max()) == float(values.min()):
            ordered = torch.sort(values, descending=True).values
            cumulative = torch.cumsum(ordered, 0) + above
            crossing = int(torch.searchsorted(cumulative, torch.tensor([target]).double()))
            return float(ordered[min(crossing, len(ordered) - 1)])
        vmin, vmax = float(values.min()), float(values.max())
        width = (vmax - vmin) / _HIST_BINS
        bins = ((values - vmin) / width).floor().clamp(0, _HIST_BINS - 1).long()
        sums = torch.bincount(bins, weights=values, minlength=_HIST_BINS)
        from_top = torch.flip(torch.cumsum(torch.flip(sums, [0]), 0), [0]) + above
        reached = (from_top >= target).nonzero()
        b = int(reached.max()) if len(reached) else 0
        lo, hi = vmin + b * width, hi if b == _HIST_BINS - 1 else vmin + (b + 1) * width
        # Recount from the values themselves so the next range and `above` agree exactly.
        above = float(flat[flat >= hi].sum(dtype=torch.float64)) if hi != math.inf else 0.0


def graph_scores(graph: Graph) -> tuple[float, float]:
    """(replacement score, completeness score) of the unpruned graph."""
    rows, block = _row_block(graph)
    norm = _normalize(block)
    weights = graph.logit_weights
    influence = _influence(norm, rows, weights)
    err = slice(graph.error_offset, graph.token_offset)
    token_influence = influence[graph.token_offset : graph.logit_offset].sum()
    error_influence = influence[err].sum()
    replacement = token_influence / (token_influence + error_influence)
    # Rows that are all zero (errors, tokens) have no error inputs: their fraction is 1.
    non_error = torch.ones(graph.n_nodes)
    non_error[rows] = 1 - norm[:, err].sum(dim=-1)
    output_influence = influence + weights
    completeness = (non_error * output_influence).sum() / output_influence.sum()
    return float(replacement), float(completeness)


def prune(graph: Graph, node_threshold: float = 0.8, edge_threshold: float = 0.98) -> PruneResult:
    if not 0.0 <= node_threshold <= 1.0 or not 0.0 <= edge_threshold <= 1.0:
        raise ValueError("node_threshold and edge_threshold must be in [0, 1]")
    n, n_feat = graph.n_nodes, graph.n_features
    n_fixed = graph.n_logits + graph.n_pos  # tokens and logits: always kept
    weights = graph.logit_weights
    rows, block = _row_block(graph)

    node_influence = _influence(_normalize(block), rows, weights)
    sorted_inf, order = torch.sort(node_influence, descending=True)
    cumulative = torch.cumsum(sorted_inf, 0) / sorted_inf.sum()
    cut = min(int(torch.searchsorted(cumulative, node_threshold)), n - 1)
    node_mask = node_influence >= sorted_inf[cut]
    node_mask[n - n_fixed :] = True

    pruned = block.clone()
    pruned[~node_mask[rows]] = 0
    pruned[:, ~node_mask] = 0
    norm_pruned = _normalize(pruned)
    target_influence = _influence(norm_pruned, rows, weights) + weights
    scores = norm_pruned * target_influence[rows][:, None]
    # A zero threshold would keep every zero-score entry; edges need a non-zero score.
    edge_mask = (scores >= cumulative_threshold(scores, edge_threshold)) & (scores > 0)

    row_pos = torch.full((n,), -1, dtype=torch.long)
    row_pos[rows] = torch.arange(len(rows))
    while True:
        before = node_mask.clone()
        node_mask[: n - n_fixed] &= edge_mask.any(0)[: n - n_fixed]  # needs an outgoing edge
        node_mask[:n_feat] &= edge_mask[:n_feat].any(1)  # features need an incoming edge
        if torch.equal(before, node_mask):
            break
        edge_mask[~node_mask[rows]] = False
        edge_mask[:, ~node_mask] = False

    influence = torch.zeros(n)
    influence[order] = cumulative
    r, sources = edge_mask.nonzero(as_tuple=True)
    replacement, completeness = graph_scores(graph)
    return PruneResult(
        node_mask=node_mask,
        edge_targets=rows[r],
        edge_sources=sources,
        edge_weights=block[r, sources],
        influence=influence,
        replacement_score=replacement,
        completeness_score=completeness,
    )
