import { describe, expect, it } from "vitest";
import { ascendingBy, groupedBy } from "./ascending";
import { buildGraph, Kind } from "./graph";
import { layoutOrder } from "./layout";
import { pruneIndex } from "./prune";

/** What the page sorted with before: a stable comparator sort. */
const comparatorSort = (items: Int32Array, compare: (a: number, b: number) => number): number[] => Array.from(items).sort(compare);

function random(seed: number): () => number {
  return () => (seed = (seed * 16807) % 2147483647) / 2147483647;
}

describe("ascendingBy", () => {
  it("orders like a stable comparator sort, over ties, signs, zeros of both signs, tiny and huge keys", () => {
    const rand = random(11);
    const pool = [0, -0, 1, -1, 0.5, -0.5, 1e-310, -1e-310, 5e-324, 1e300, -1e300, Infinity, -Infinity, 0.1 + 0.2, 0.3];
    const keys = Float64Array.from({ length: 5000 }, (_, i) => (i % 3 === 0 ? pool[Math.floor(rand() * pool.length)]! : (rand() - 0.5) * 10 ** Math.floor(rand() * 12 - 6)));
    const items = Int32Array.from({ length: 3000 }, () => Math.floor(rand() * keys.length)); // repeats too
    const expected = comparatorSort(items, (a, b) => keys[a]! - keys[b]! || 0);
    expect(Array.from(ascendingBy(keys, items))).toEqual(expected);
  });

  it("keeps the order of equal keys, -0 and 0 being equal", () => {
    const keys = new Float64Array([0, -0, 0, -0, -1]);
    expect(Array.from(ascendingBy(keys, new Int32Array([3, 0, 1, 2, 4])))).toEqual([4, 3, 0, 1, 2]);
  });

  it("sorts nothing into nothing", () => {
    expect(ascendingBy(new Float64Array(0), new Int32Array(0)).length).toBe(0);
  });
});

describe("groupedBy", () => {
  it("groups by bucket, keeping the given order within each", () => {
    const bucket = new Int32Array([2, 0, 2, 1, 0]);
    expect(Array.from(groupedBy(bucket, 3, new Int32Array([4, 3, 2, 1, 0])))).toEqual([4, 1, 3, 2, 0]);
  });
});

describe("the graph's orderings", () => {
  // Many nodes per cell with repeated influences and probabilities, NaNs among them.
  const rand = random(5);
  const nodes = [];
  for (let k = 0; k < 600; k++) {
    const layer = Math.floor(rand() * 4);
    const ctx = Math.floor(rand() * 3);
    const influence = rand() < 0.1 ? null : Math.round(rand() * 20) / 20;
    nodes.push({ node_id: `${layer}_${k}_${ctx}`, feature: k, layer, ctx_idx: ctx, feature_type: "clt", influence, clerp: "" });
  }
  for (let k = 0; k < 40; k++) {
    const p = rand() < 0.2 ? 0 : Math.round(rand() * 10) / 10;
    nodes.push({ node_id: `9_${k}_2`, feature: k, layer: 9, ctx_idx: 2, feature_type: "logit", clerp: `Output "t${k}" (p=${p})`, token_prob: p });
  }
  for (let ctx = 0; ctx < 3; ctx++) nodes.push({ node_id: `E_1_${ctx}`, feature: null, layer: "E", ctx_idx: ctx, feature_type: "embedding", clerp: "" });
  const graph = buildGraph({ metadata: { prompt_tokens: ["a", "b", "c"] }, nodes, links: [] });
  const all = Int32Array.from({ length: graph.n }, (_, i) => i);

  it("layoutOrder: by cell, then logits by probability and others by influence, then index", () => {
    const nCtx = graph.nCtx;
    const rank = (i: number): number => {
      const v = graph.kind[i] === Kind.Logit ? -graph.nodes[i]!.tokenProb : graph.influence[i]!;
      return Number.isNaN(v) ? Infinity : v;
    };
    const cell = (i: number): number => graph.row[i]! * nCtx + graph.ctx[i]!;
    const expected = comparatorSort(all, (a, b) => cell(a) - cell(b) || rank(a) - rank(b) || a - b);
    expect(Array.from(layoutOrder(graph))).toEqual(expected);
  });

  it("pruneIndex: the prunable nodes by influence, ties by index", () => {
    const prunable = all.filter((i) => graph.kind[i] !== Kind.Embedding && graph.kind[i] !== Kind.Logit && !Number.isNaN(graph.influence[i]!));
    const expected = comparatorSort(prunable, (a, b) => graph.influence[a]! - graph.influence[b]!);
    const index = pruneIndex(graph);
    expect(Array.from(index.order)).toEqual(expected);
    expect(Array.from(index.sortedInfluence)).toEqual(expected.map((i) => graph.influence[i]));
  });
});
