// Client-side pruning. The sort happens once (pruneIndex); moving a slider is a binary search
// plus one pass to fill a mask, so it stays well under a frame on 10k nodes / 200k edges.

import { JOB_PARAMS } from "../contract.gen";
import { Kind, type Graph } from "./graph";

export interface Thresholds {
  node: number; // keep features/errors whose cumulative influence <= node (1 keeps all)
  edge: number; // keep edges among the strongest holding this share of total |weight| (1 keeps all)
  density: number; // hide features whose activation density is above this (1 keeps all)
}

// A graph's own thresholds when it has them (state.ts); else a generated graph's defaults.
export const DEFAULT_THRESHOLDS: Thresholds = {
  node: JOB_PARAMS.attribution.node_threshold.default,
  edge: JOB_PARAMS.attribution.edge_threshold.default,
  density: 1,
};

export interface PruneIndex {
  order: Int32Array; // prunable nodes (features/errors with an influence) by influence ascending
  sortedInfluence: Float64Array;
  always: Int32Array; // embeddings, logits and nodes without an influence: never pruned
}

export function pruneIndex(graph: Graph): PruneIndex {
  const prunable: number[] = [];
  const always: number[] = [];
  for (let i = 0; i < graph.n; i++) {
    const k = graph.kind[i];
    if (k === Kind.Embedding || k === Kind.Logit || Number.isNaN(graph.influence[i]!)) always.push(i);
    else prunable.push(i);
  }
  const order = Int32Array.from(prunable);
  order.sort((a, b) => graph.influence[a]! - graph.influence[b]!);
  const sortedInfluence = new Float64Array(order.length);
  for (let j = 0; j < order.length; j++) sortedInfluence[j] = graph.influence[order[j]!]!;
  return { order, sortedInfluence, always: Int32Array.from(always) };
}

/** Number of entries of a sorted array that are <= x. */
export function countAtMost(sorted: Float64Array, x: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Fill `out` (length n) with 1 for visible nodes; return how many are visible.
 * `density` gives a feature's activation density (NaN when unknown: kept).
 * `keep` nodes (pinned, selected) stay visible whatever the thresholds say.
 */
export function visibleNodes(
  graph: Graph,
  index: PruneIndex,
  t: Thresholds,
  out: Uint8Array,
  density: Float32Array | null = null,
  keep: Iterable<number> = [],
): number {
  out.fill(0);
  for (const i of index.always) out[i] = 1;
  const cut = t.node >= 1 ? index.order.length : countAtMost(index.sortedInfluence, t.node);
  for (let j = 0; j < cut; j++) out[index.order[j]!] = 1;
  if (density && t.density < 1) {
    for (let i = 0; i < graph.n; i++) {
      if (graph.kind[i] === Kind.Feature && density[i]! > t.density) out[i] = 0;
    }
  }
  for (const i of keep) if (i >= 0 && i < graph.n) out[i] = 1;
  let count = 0;
  for (let i = 0; i < graph.n; i++) count += out[i]!;
  return count;
}

/** An edge is drawn when both ends are visible and it is within the edge threshold. */
export function edgeVisible(graph: Graph, e: number, visible: Uint8Array, edgeThreshold: number): boolean {
  return (
    visible[graph.edgeSrc[e]!] === 1 &&
    visible[graph.edgeDst[e]!] === 1 &&
    (edgeThreshold >= 1 || graph.edgeCumBefore[e]! < edgeThreshold)
  );
}

/** Edges surviving the edge threshold form a prefix of the global order; count the visible ones. */
export function countVisibleEdges(graph: Graph, visible: Uint8Array, edgeThreshold: number): number {
  let count = 0;
  const { edgeSrc, edgeDst, edgeCumBefore, nEdges } = graph;
  const all = edgeThreshold >= 1;
  for (let e = 0; e < nEdges; e++) {
    if (!all && edgeCumBefore[e]! >= edgeThreshold) break;
    if (visible[edgeSrc[e]!] === 1 && visible[edgeDst[e]!] === 1) count++;
  }
  return count;
}
