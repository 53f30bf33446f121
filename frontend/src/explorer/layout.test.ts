import { describe, expect, it } from "vitest";
import { buildGraph } from "./graph";
import { tinyGraphJson } from "./fixture";
import { computeLayout, MIN_COLUMN } from "./layout";
import { buildGrid, inRect, nearest } from "./spatial";

describe("computeLayout", () => {
  const graph = buildGraph(tinyGraphJson());
  const all = new Uint8Array(graph.n).fill(1);
  const id = (s: string): number => graph.index.get(s)!;

  it("places prompt positions left to right and layers bottom to top", () => {
    const layout = computeLayout(graph, all);
    expect(layout.x[id("E_10_0")]!).toBeLessThan(layout.x[id("E_11_1")]!);
    expect(layout.y[id("E_10_0")]!).toBeGreaterThan(layout.y[id("0_5_0")]!); // screen y grows down
    expect(layout.y[id("3_42_1")]).toBe(0);
  });

  it("widens a column with the number of nodes in its busiest cell", () => {
    const wide = buildGraph({
      metadata: { prompt_tokens: ["a", "b"] },
      nodes: Array.from({ length: 30 }, (_, k) => ({ node_id: `0_${k}_1`, feature: k, layer: 0, ctx_idx: 1, feature_type: "transcoder" })),
      links: [],
    });
    const layout = computeLayout(wide, new Uint8Array(wide.n).fill(1));
    expect(layout.columnWidth[0]).toBe(MIN_COLUMN);
    expect(layout.columnWidth[1]!).toBeGreaterThan(MIN_COLUMN * 5);
    const xs = new Set(Array.from(layout.x));
    expect(xs.size).toBe(30); // no two nodes on top of each other
  });

  it("leaves hidden nodes out", () => {
    const mask = all.slice();
    mask[id("0_5_0")] = 0;
    const layout = computeLayout(graph, mask);
    expect(Number.isNaN(layout.x[id("0_5_0")]!)).toBe(true);
  });

  it("finds the nearest node with the grid, and nothing when the pointer is far away", () => {
    const layout = computeLayout(graph, all);
    const grid = buildGrid(layout.x, layout.y);
    const target = id("1_3_1");
    expect(nearest(grid, layout.x[target]! + 2, layout.y[target]! - 1, 8)).toBe(target);
    expect(nearest(grid, -500, -500, 8)).toBe(-1);
    // With y drawn 10x larger than x, a node 2 world y-units away is 20 pixels away: no hit.
    expect(nearest(grid, layout.x[target]!, layout.y[target]! + 2, 8, 10)).toBe(-1);
    expect(inRect(grid, -1e6, -1e6, 1e6, 1e6).length).toBe(graph.n);
  });
});
