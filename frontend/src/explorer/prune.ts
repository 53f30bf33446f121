// Client-side pruning. The sort happens once (pruneIndex); moving a slider is a binary search
// plus one pass to fill a mask, so it stays well under a frame on 10k nodes / 200k edges.

import { JOB_PARAMS } from "../contract.gen";
import { ascendingBy } from "./ascending";
import { EDGE_MARK, Kind, type Graph } from "./graph";

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
  const order = ascendingBy(graph.influence, Int32Array.from(prunable));
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

/** An edge is drawn when both ends are visible and it is within the edge threshold, whose
 * edges are the first `prefix` of the global order (edgePrefix). */
export function edgeVisible(graph: Graph, e: number, visible: Uint8Array, prefix: number): boolean {
  return e < prefix && visible[graph.edgeSrc[e]!] === 1 && visible[graph.edgeDst[e]!] === 1;
}

/**
 * How many edges survive the edge threshold: those whose share of the total |weight| held by the
 * edges before them, as a float32, is below it. The share never falls along the global order, so
 * they form a prefix: found by bisecting the marks, then summing on from the last mark below.
 */
export function edgePrefix(graph: Graph, edgeThreshold: number): number {
  if (edgeThreshold >= 1) return graph.nEdges;
  const { edgeAbsBefore: marks, edgeAbsTotal: total, edgeWeight } = graph;
  const below = (running: number): boolean => Math.fround(total > 0 ? running / total : 0) < edgeThreshold;
  let lo = 0;
  let hi = marks.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (below(marks[mid]!)) lo = mid + 1;
    else hi = mid;
  }
  if (lo === 0) return 0;
  let e = (lo - 1) * EDGE_MARK;
  let running = marks[lo - 1]!;
  const end = Math.min(graph.nEdges, lo * EDGE_MARK);
  while (e < end && below(running)) running += Math.abs(edgeWeight[e++]!);
  return e;
}

/** Count the visible edges: within the edge threshold's prefix, both ends visible. */
export function countVisibleEdges(graph: Graph, visible: Uint8Array, edgeThreshold: number): number {
  let count = 0;
  const { edgeSrc, edgeDst } = graph;
  const prefix = edgePrefix(graph, edgeThreshold);
  for (let e = 0; e < prefix; e++) if (visible[edgeSrc[e]!] === 1 && visible[edgeDst[e]!] === 1) count++;
  return count;
}

/**
 * The visible edges' count for `visible`, from `count` of them for `before` (same graph and
 * edge threshold): only the edges of the nodes that appeared or went are walked, which for a
 * slider step is a small share of a 2M-edge graph. Null when that would walk more than a full
 * count (countVisibleEdges) does.
 */
export function updateVisibleEdges(graph: Graph, before: Uint8Array, count: number, visible: Uint8Array, edgeThreshold: number): number | null {
  const { n, outStart, inStart, outEdges, inEdges, outDst, inSrc } = graph;
  const changed: number[] = [];
  let work = 0;
  for (let i = 0; i < n; i++) {
    if (before[i] === visible[i]) continue;
    changed.push(i);
    work += outStart[i + 1]! - outStart[i]! + inStart[i + 1]! - inStart[i]!;
    if (work > graph.nEdges) return null;
  }
  const prefix = edgePrefix(graph, edgeThreshold);
  // Edges with both ends in `mask` and at least one end among the changed nodes that are in it;
  // an edge with both ends changed is counted once, from its source.
  const touching = (mask: Uint8Array): number => {
    let total = 0;
    for (const i of changed) {
      if (mask[i] !== 1) continue;
      for (let j = outStart[i]!; j < outStart[i + 1]!; j++) {
        if (outEdges[j]! < prefix && mask[outDst[j]!] === 1) total++;
      }
      for (let j = inStart[i]!; j < inStart[i + 1]!; j++) {
        const src = inSrc[j]!;
        if (inEdges[j]! < prefix && mask[src] === 1 && before[src] === visible[src]) total++;
      }
    }
    return total;
  };
  return count - touching(before) + touching(visible);
}
