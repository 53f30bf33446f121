// Search in the graph: a feature id (`L12/3456`, `12/3456`), a node id, text found in a node's
// label, its token, or a loaded explanation, or a prompt token (the features at its positions).
// Results are ranked: exact id matches, then label prefix matches, then substring matches, then
// the features at a matching token, each by influence.

import { Kind, nodeLabel, type Graph } from "./graph";

export interface SearchOptions {
  labels?: ReadonlyMap<number, string>;
  explanation?: (i: number) => string | undefined;
  limit?: number;
}

const FEATURE_ID = /^\s*L?(\d+)\s*[/:]\s*(\d+)\s*$/i;

export function searchGraph(graph: Graph, query: string, options: SearchOptions = {}): number[] {
  const q = query.trim().slice(0, 200).toLowerCase();
  if (!q) return [];
  const limit = options.limit ?? 200;
  const featureId = FEATURE_ID.exec(q);
  if (featureId) {
    const layer = Number(featureId[1]);
    const feature = Number(featureId[2]);
    const hits: number[] = [];
    for (let i = 0; i < graph.n; i++) {
      const node = graph.nodes[i]!;
      if (node.kind === Kind.Feature && node.layer === layer && node.feature === feature) hits.push(i);
    }
    return hits.slice(0, limit);
  }
  const exact = graph.index.get(query.trim());
  const scored: { i: number; score: number }[] = [];
  for (let i = 0; i < graph.n; i++) {
    if (i === exact) {
      scored.push({ i, score: 0 });
      continue;
    }
    const node = graph.nodes[i]!;
    const label = nodeLabel(node, options.labels?.get(i)).toLowerCase();
    let score = -1;
    if (label.startsWith(q)) score = 1;
    else if (label.includes(q)) score = 2;
    else if (node.token.toLowerCase().includes(q) && node.kind !== Kind.Feature) score = 2;
    else if (node.clerp.toLowerCase().includes(q)) score = 3;
    else if (options.explanation?.(i)?.toLowerCase().includes(q)) score = 3;
    // A prompt token ("is") finds the features at its positions, after the nodes named by it.
    else if (node.kind === Kind.Feature && node.token.trim().toLowerCase() === q) score = 4;
    if (score >= 0) scored.push({ i, score });
  }
  const inf = (i: number): number => {
    const v = graph.influence[i]!;
    return Number.isNaN(v) ? 2 : v;
  };
  scored.sort((a, b) => a.score - b.score || inf(a.i) - inf(b.i));
  return scored.slice(0, limit).map((s) => s.i);
}
