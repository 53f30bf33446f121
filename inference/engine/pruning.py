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

Only feature and logit rows can be non-zero, so everything works on that (rows x N) block (the
graph's ``target_rows``), and the edge threshold is found from a sorted random sample that brackets it, sorting only the
scores inside the bracket, never all N^2 of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from contract.params import AttributeParams

from .graph import Graph

_SORT_LIMIT = 1 << 16  # below this many scores, sort them all
_SAMPLE = 1 << 20  # random scores sorted to bracket the threshold
_CHUNK = 1 << 24  # scores processed per step, bounding temporary memory


@dataclass
class PruneResult:
    node_mask: torch.Tensor  # (N,) bool: nodes kept
    edge_targets: torch.Tensor  # (E,) int64 node indices of kept edges' targets
    edge_sources: torch.Tensor  # (E,) int64
    edge_weights: torch.Tensor  # (E,) float32 adjacency values of kept edges
    influence: torch.Tensor  # (N,) cumulative influence fraction of every node
    replacement_score: float
    completeness_score: float


def _abs_rows(graph: Graph, out: torch.Tensor | None = None) -> torch.Tensor:
    """|A| of the graph's rows (graph.target_rows), into `out` when given."""
    if out is None:
        return graph.target_rows.abs()
    return torch.abs(graph.target_rows, out=out)


def _normalize_(block: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Row-normalise |A| in place."""
    return block.div_(block.sum(dim=1, keepdim=True).clamp(min=eps))


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


def _masked_sum(chunks: list[torch.Tensor], above: float) -> float:
    """Sum of the scores strictly greater than `above`."""
    return sum(float(torch.where(c > above, c, 0).sum(dtype=torch.float64)) for c in chunks)


def _between(chunks: list[torch.Tensor], lo: float, hi: float) -> torch.Tensor:
    """Scores in [lo, hi]."""
    return torch.cat([c[(c >= lo) & (c <= hi)] for c in chunks])


def cumulative_threshold(scores: torch.Tensor, threshold: float) -> float:
    """circuit-tracer's `find_threshold` without sorting every score.

    Returns the score at which the descending cumulative sum of the (non-negative) `scores`
    first reaches `threshold` of their total; 0.0 where only zero scores reach it. A sorted random sample brackets that score; one pass sums the
    scores above the bracket and collects those inside it, and only those are sorted. The
    result is exact: a bracket that misses is widened and the pass repeated.
    """
    flat = scores.reshape(-1).float()
    # Zeros (most of a pruned graph's scores) add nothing to any sum and are never the crossing
    # score unless no positive one is (the 0.0 below), so every pass after this one reads only
    # the positive scores.
    flat = flat[flat > 0]
    chunks = list(torch.split(flat, _CHUNK))
    if flat.numel() == 0:
        return 0.0
    target = threshold * sum(float(c.sum(dtype=torch.float64)) for c in chunks)
    top = float(flat.max())
    lo, hi = 0.0, top
    if flat.numel() > _SORT_LIMIT:
        g = torch.Generator().manual_seed(0)
        sample = flat[torch.randint(0, flat.numel(), (_SAMPLE,), generator=g)]
        ordered = torch.sort(sample.double(), descending=True).values
        estimate = torch.cumsum(ordered, 0) * (flat.numel() / _SAMPLE)
        k = int(torch.searchsorted(estimate, torch.tensor([target]).double()))
        margin = _SAMPLE // 100  # ~1% of ranks either side: many standard errors of the estimate
        hi = float(ordered[max(k - margin, 0)]) if k - margin > 0 else top
        lo = float(ordered[min(k + margin, _SAMPLE - 1)]) if k + margin < _SAMPLE else 0.0
    while True:
        above = _masked_sum(chunks, hi)
        candidates = _between(chunks, lo, hi).double()
        if above >= target and hi < top:  # the answer lies above the bracket
            lo, hi = hi, top
            continue
        ordered = torch.sort(candidates, descending=True).values
        cumulative = torch.cumsum(ordered, 0) + above
        if (len(ordered) == 0 or cumulative[-1] < target) and lo > 0.0:  # it lies below
            lo, hi = 0.0, lo
            continue
        if len(ordered) == 0 or cumulative[-1] < target:
            return 0.0  # only zero scores remain below: the crossing score is zero
        crossing = int(torch.searchsorted(cumulative, torch.tensor([target]).double()))
        return float(ordered[min(crossing, len(ordered) - 1)])


def graph_scores(graph: Graph) -> tuple[float, float]:
    """(replacement score, completeness score) of the unpruned graph."""
    rows = graph.row_nodes
    norm = _normalize_(_abs_rows(graph))
    return _scores(graph, rows, norm, _influence(norm, rows, graph.logit_weights))


def _scores(
    graph: Graph, rows: torch.Tensor, norm: torch.Tensor, influence: torch.Tensor
) -> tuple[float, float]:
    err = slice(graph.error_offset, graph.token_offset)
    token_influence = influence[graph.token_offset : graph.logit_offset].sum()
    error_influence = influence[err].sum()
    replacement = token_influence / (token_influence + error_influence)
    # Rows that are all zero (errors, tokens) have no error inputs: their fraction is 1.
    non_error = torch.ones(graph.n_nodes)
    non_error[rows] = 1 - norm[:, err].sum(dim=-1)
    output_influence = influence + graph.logit_weights
    completeness = (non_error * output_influence).sum() / output_influence.sum()
    return float(replacement), float(completeness)


def prune(
    graph: Graph,
    *,
    node_threshold: float = AttributeParams.node_threshold,
    edge_threshold: float = AttributeParams.edge_threshold,
) -> PruneResult:
    if not 0.0 <= node_threshold <= 1.0 or not 0.0 <= edge_threshold <= 1.0:
        raise ValueError("node_threshold and edge_threshold must be in [0, 1]")
    n, n_feat = graph.n_nodes, graph.n_features
    n_fixed = graph.n_logits + graph.n_pos  # tokens and logits: always kept
    weights = graph.logit_weights
    rows = graph.row_nodes

    # One (rows x N) work buffer, reused in place: |A| normalised, then pruned, then scores.
    work = _normalize_(_abs_rows(graph))
    node_influence = _influence(work, rows, weights)
    replacement, completeness = _scores(graph, rows, work, node_influence)
    sorted_inf, order = torch.sort(node_influence, descending=True)
    cumulative = torch.cumsum(sorted_inf, 0) / sorted_inf.sum()
    cut = min(int(torch.searchsorted(cumulative, node_threshold)), n - 1)
    node_mask = node_influence >= sorted_inf[cut]
    node_mask[n - n_fixed :] = True

    _abs_rows(graph, out=work)
    work[~node_mask[rows]] = 0
    work[:, ~node_mask] = 0
    _normalize_(work)
    target_influence = _influence(work, rows, weights) + weights
    scores = work.mul_(target_influence[rows][:, None])
    # A zero threshold would keep every zero-score entry; edges need a non-zero score.
    edge_mask = scores >= cumulative_threshold(scores, edge_threshold)
    edge_mask &= scores > 0
    del work, scores

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
    del edge_mask
    return PruneResult(
        node_mask=node_mask,
        edge_targets=rows[r],
        edge_sources=sources,
        edge_weights=graph.target_rows[r, sources],
        influence=influence,
        replacement_score=replacement,
        completeness_score=completeness,
    )
