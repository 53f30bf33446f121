import { describe, expect, it } from "vitest";
import { connectionRows, rowAt, type Row } from "./connections";
import { buildGraph } from "./graph";
import { createStore, type ExplorerState } from "./state";

/** The rows as the list made them before, an object per edge: the reference. */
function objectRows(s: ExplorerState, node: number, side: "input" | "output"): Row[] {
  const g = s.graph;
  const start = side === "input" ? g.inStart : g.outStart;
  const edges = side === "input" ? g.inEdges : g.outEdges;
  const positive: Row[] = [];
  const negative: Row[] = [];
  for (let j = start[node]!; j < start[node + 1]!; j++) {
    const e = edges[j]!;
    const other = side === "input" ? g.edgeSrc[e]! : g.edgeDst[e]!;
    if (s.view.visible[other] !== 1) continue;
    const w = g.edgeWeight[e]!;
    (w >= 0 ? positive : negative).push({ edge: e, other, weight: w });
  }
  const rows: Row[] = [];
  if (positive.length) rows.push({ header: `Positive (${positive.length})` }, ...positive);
  if (negative.length) rows.push({ header: `Negative (${negative.length})` }, ...negative);
  return rows;
}

describe("connectionRows", () => {
  // Nodes with many edges of both signs, zeros included, some ends pruned away.
  let seed = 3;
  const rand = (): number => (seed = (seed * 16807) % 2147483647) / 2147483647;
  const nodes = Array.from({ length: 60 }, (_, k) => ({ node_id: `${k % 4}_${k}_0`, feature: k, layer: k % 4, ctx_idx: 0, feature_type: "clt", influence: rand(), clerp: "" }));
  const links = Array.from({ length: 1500 }, () => ({
    source: nodes[Math.floor(rand() * 60)]!.node_id,
    target: nodes[Math.floor(rand() * 60)]!.node_id,
    weight: rand() < 0.05 ? 0 : Math.round((rand() - 0.5) * 100) / 10,
  }));
  const graph = buildGraph({ metadata: { prompt_tokens: ["a"] }, nodes, links });

  it.each([1, 0.5, 0.1])("lists what the object rows listed, in their order, at node threshold %s", (node) => {
    const store = createStore(graph);
    store.set({ thresholds: { node, edge: 1, density: 1 } });
    const s = store.get();
    for (let i = 0; i < graph.n; i++) {
      for (const side of ["input", "output"] as const) {
        const rows = connectionRows(s, i, side);
        expect(Array.from({ length: rows.length }, (_, k) => rowAt(graph, rows, k))).toEqual(objectRows(s, i, side));
      }
    }
  });

  it("has no rows for a node without visible neighbours", () => {
    const store = createStore(graph);
    store.set({ thresholds: { node: 0, edge: 1, density: 1 } });
    const lonely = [...Array(graph.n).keys()].find((i) => objectRows(store.get(), i, "input").length === 0)!;
    expect(connectionRows(store.get(), lonely, "input").length).toBe(0);
  });
});
