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

  it("keeps the grid to a few cells per node on a huge sparse world, and still finds what a scan finds", () => {
    let seed = 3;
    const random = (): number => (seed = (seed * 16807) % 2147483647) / 2147483647;
    const n = 2000;
    const x = new Float32Array(n);
    const y = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      x[i] = random() * 400_000; // a wide world whose nodes sit on 18 rows
      y[i] = Math.floor(random() * 18) * 10_000;
    }
    x[5] = Number.NaN; // hidden
    const grid = buildGrid(x, y);
    expect(grid.cols * grid.rows).toBeLessThan(5 * n); // 16-unit cells would be over 250 million
    const scan = (wx: number, wy: number, radius: number, yScale: number): number => {
      let best = -1;
      let bestD = radius * radius;
      for (let i = 0; i < n; i++) {
        const d = (x[i]! - wx) ** 2 + ((y[i]! - wy) * yScale) ** 2;
        if (d <= bestD) [best, bestD] = [i, d];
      }
      return best;
    };
    for (let q = 0; q < 300; q++) {
      const i = Math.floor(random() * n);
      const [wx, wy] = [x[i]! + (random() - 0.5) * 600, y[i]! + (random() - 0.5) * 30];
      expect(nearest(grid, wx, wy, 250, 20)).toBe(scan(wx, wy, 250, 20));
    }
    expect(inRect(grid, 0, -1, 400_000, 200_000).length).toBe(n - 1);
  });
});
