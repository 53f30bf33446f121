import { describe, expect, it } from "vitest";
import { buildGraph } from "./graph";
import { tinyGraphJson } from "./fixture";
import { createStore } from "./state";
import { layeredPositions } from "./subgraph";
import { aggregate } from "./supernodes";

describe("subgraph layout", () => {
  const graph = buildGraph(tinyGraphJson());
  const id = (s: string): number => graph.index.get(s)!;

  it("puts later layers higher and keeps units in the same row apart and inside the panel", () => {
    const store = createStore(graph);
    const pinned = [id("E_10_0"), id("E_11_1"), id("0_5_0"), id("0_7_1"), id("1_3_1"), id("3_42_1")];
    const agg = aggregate(graph, pinned, []);
    const pts = layeredPositions(store.get(), agg, 600, 300);
    const at = (node: string) => pts[agg.unitOf.get(id(node))!]!;
    expect(at("1_3_1").y).toBeLessThan(at("0_7_1").y);
    expect(at("3_42_1").y).toBeLessThan(at("1_3_1").y);
    expect(Math.abs(at("E_10_0").x - at("E_11_1").x)).toBeGreaterThanOrEqual(100);
    for (const p of pts) {
      expect(p.x).toBeGreaterThanOrEqual(0);
      expect(p.x).toBeLessThanOrEqual(600);
      expect(p.y).toBeGreaterThanOrEqual(0);
      expect(p.y).toBeLessThanOrEqual(300);
    }
  });
});
