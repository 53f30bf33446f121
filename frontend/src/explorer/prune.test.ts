import { describe, expect, it } from "vitest";
import { buildGraph, EDGE_MARK, edgesInOrder, type Graph } from "./graph";
import { tinyGraphJson } from "./fixture";
import { countAtMost, countVisibleEdges, edgePrefix, edgeVisible, pruneIndex, updateVisibleEdges, visibleNodes } from "./prune";

describe("pruning", () => {
  const graph = buildGraph(tinyGraphJson());
  const index = pruneIndex(graph);
  const mask = new Uint8Array(graph.n);
  const id = (s: string): number => graph.index.get(s)!;

  it("counts with a binary search over the sorted influences", () => {
    expect(countAtMost(new Float64Array([0.1, 0.3, 0.6, 0.9]), 0.3)).toBe(2);
    expect(countAtMost(new Float64Array([0.1, 0.3]), 0)).toBe(0);
    expect(countAtMost(new Float64Array([0.1, 0.3]), 5)).toBe(2);
  });

  it("keeps the nodes whose cumulative influence is under the threshold, and never prunes embeddings or logits", () => {
    expect(visibleNodes(graph, index, { node: 0.5, edge: 1, density: 1 }, mask)).toBe(5);
    expect(mask[id("0_7_1")]).toBe(1);
    expect(mask[id("1_3_1")]).toBe(0);
    expect(mask[id("E_10_0")]).toBe(1);
    expect(mask[id("3_42_1")]).toBe(1);
  });

  it("shows fewer nodes as the slider goes down and all of them at 1", () => {
    const counts = [0, 0.2, 0.5, 0.8, 1].map((t) => visibleNodes(graph, index, { node: t, edge: 1, density: 1 }, mask));
    expect(counts).toEqual([3, 4, 5, 6, 7]);
  });

  it("keeps pinned nodes visible whatever the threshold", () => {
    visibleNodes(graph, index, { node: 0, edge: 1, density: 1 }, mask, null, [id("1_3_1")]);
    expect(mask[id("1_3_1")]).toBe(1);
  });

  it("hides features denser than the density threshold when densities are known", () => {
    const density = new Float32Array(graph.n).fill(Number.NaN);
    density[id("0_5_0")] = 0.5;
    density[id("0_7_1")] = 0.001;
    visibleNodes(graph, index, { node: 1, edge: 1, density: 0.01 }, mask, density);
    expect(mask[id("0_5_0")]).toBe(0);
    expect(mask[id("0_7_1")]).toBe(1);
    expect(mask[id("1_3_1")]).toBe(1); // unknown density: kept
  });

  it("drops edges past the cumulative weight threshold and edges to hidden nodes", () => {
    visibleNodes(graph, index, { node: 1, edge: 1, density: 1 }, mask);
    expect(countVisibleEdges(graph, mask, 1)).toBe(7);
    // |w| sorted: 5 4 3 2 1.5 1 0.5 (total 17): 0.5 keeps edges starting before 8.5 → 5, 4
    expect(countVisibleEdges(graph, mask, 0.5)).toBe(2);
    expect(edgeVisible(graph, 0, mask, edgePrefix(graph, 0.01))).toBe(true);
    expect(edgeVisible(graph, 1, mask, edgePrefix(graph, 0.01))).toBe(false);
    visibleNodes(graph, index, { node: 0.2, edge: 1, density: 1 }, mask);
    expect(countVisibleEdges(graph, mask, 1)).toBe(2); // E_11→0_7 and 0_7→logit
  });

  it("counts edges from the last count as a full count does, over random graphs and slider moves", () => {
    let seed = 5;
    let checked = 0;
    const random = (): number => (seed = (seed * 16807) % 2147483647) / 2147483647;
    for (let round = 0; round < 30; round++) {
      const n = 5 + Math.floor(random() * 80);
      const nodes = Array.from({ length: n }, (_, k) => ({
        node_id: `${k % 3}_${k}_0`,
        layer: String(k % 3),
        ctx_idx: 0,
        feature_type: k % 7 === 0 ? "mlp reconstruction error" : "cross layer transcoder",
        influence: k % 11 === 0 ? null : random(),
      }));
      // Self-loops and both directions between a pair included.
      const links = Array.from({ length: Math.floor(random() * n * 6) }, () => ({
        source: nodes[Math.floor(random() * n)]!.node_id,
        target: nodes[Math.floor(random() * n)]!.node_id,
        weight: random() - 0.5,
      }));
      const g = buildGraph({ metadata: {}, nodes, links });
      const prune = pruneIndex(g);
      const density = new Float32Array(g.n).map(() => (random() < 0.5 ? random() : Number.NaN));
      let before = new Uint8Array(g.n);
      const edge = [1, 0.9, 0.5][round % 3]!;
      let count = countVisibleEdges(g, before, edge);
      for (let move = 0; move < 12; move++) {
        const keep = Array.from({ length: Math.floor(random() * 4) }, () => Math.floor(random() * g.n));
        const t = { node: move % 5 === 4 ? 1 : random(), edge, density: random() < 0.3 ? random() : 1 };
        const visible = new Uint8Array(g.n);
        visibleNodes(g, prune, t, visible, density, keep);
        const full = countVisibleEdges(g, visible, edge);
        const updated = updateVisibleEdges(g, before, count, visible, edge);
        if (updated !== null) {
          expect(updated).toBe(full);
          checked++;
        }
        [before, count] = [visible, full];
      }
    }
    expect(checked).toBeGreaterThan(100); // of 360 moves: the update is what was tested
  });

  it("gives up on the update when more nodes changed than a full count would cost", () => {
    const all = new Uint8Array(graph.n).fill(1);
    const none = new Uint8Array(graph.n);
    expect(updateVisibleEdges(graph, none, 0, all, 1)).toBeNull();
    const one = none.slice();
    one[id("E_10_0")] = 1;
    const two = one.slice();
    two[id("0_5_0")] = 1;
    expect(updateVisibleEdges(graph, one, 0, two, 1)).toBe(1);
    expect(updateVisibleEdges(graph, two, 1, one, 1)).toBe(0);
  });
});

describe("edgePrefix", () => {
  it("finds the edges whose share before them is below the threshold, as summing every edge's share finds them", () => {
    let seed = 11;
    const random = (): number => (seed = (seed * 16807) % 2147483647) / 2147483647;
    let checked = 0;
    for (const m of [0, 1, EDGE_MARK - 1, EDGE_MARK, EDGE_MARK + 1, 1000, 4321]) {
      // Weights in the explorer's order (|w| descending), with ties, zeros and tiny ones.
      const magnitudes = Array.from({ length: m }, (_, e) => (e % 97 === 3 ? 0 : e % 5 === 0 ? 0.25 : random() ** 4 * 10));
      const weights = Float64Array.from(magnitudes.sort((a, b) => b - a), (w, e) => (e % 3 === 0 ? -w : w));
      const ends = Int32Array.from({ length: m }, (_, e) => e % 7);
      const graph = { ...edgesInOrder(7, ends, ends.map((x) => (x + 1) % 7), weights) } as unknown as Graph;
      // Every edge's share, the old way: a float32 per edge.
      const total = weights.reduce((sum, w) => sum + Math.abs(w), 0);
      const shares = new Float32Array(m);
      let running = 0;
      for (let e = 0; e < m; e++) {
        shares[e] = total > 0 ? running / total : 0;
        running += Math.abs(weights[e]!);
      }
      const thresholds = [0, 1e-9, 0.5, 0.999, 0.9999999, 1, ...Array.from({ length: 20 }, random), ...Array.from(shares.filter((_, e) => e % 37 === 0))];
      for (const t of thresholds) {
        const expected = t >= 1 ? m : shares.filter((share) => share < t).length;
        expect(edgePrefix(graph, t)).toBe(expected);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(150);
  });
});
