import { describe, expect, it } from "vitest";
import { connectionRows, rowAt } from "./connections";
import { buildGraph, heldRecords } from "./graph";
import { tinyGraphJson } from "./fixture";
import { exportGraphJson, linkGraphSvg } from "./exporting";
import { createStore } from "./state";

describe("export", () => {
  const graph = buildGraph(tinyGraphJson());
  const id = (s: string): number => graph.index.get(s)!;

  it("writes the graph back with pins, supernodes and labels in qParams, and reads back the same", () => {
    const store = createStore(graph);
    store.set({
      pinned: [id("0_5_0"), id("0_7_1")],
      groups: [{ name: "cats", members: [id("0_5_0"), id("0_7_1")] }],
      labels: new Map([[id("0_5_0"), "article"]]),
      selected: id("1_3_1"),
    });
    const out = exportGraphJson(store.get(), heldRecords(store.get().graph.rawNodes)!);
    expect(out["qParams"]).toMatchObject({
      pinnedIds: ["0_5_0", "0_7_1"],
      supernodes: [["cats", "0_5_0", "0_7_1"]],
      clerps: [["0_5_0", "article"]],
      clickedId: "1_3_1",
    });
    const nodes = out["nodes"] as { node_id: string; clerp: string }[];
    expect(nodes.find((n) => n.node_id === "0_5_0")!.clerp).toBe("article");
    expect(nodes.find((n) => n.node_id === "0_7_1")!.clerp).toBe("cats and felines");
    const again = buildGraph(JSON.parse(JSON.stringify(out)));
    expect(again.n).toBe(graph.n);
    expect(again.nEdges).toBe(graph.nEdges);
    expect(again.dropped).toEqual({ nodes: 0, links: 0 });
  });

  it("escapes text in the SVG", () => {
    const hostile = tinyGraphJson();
    (hostile["metadata"] as { prompt_tokens: string[] }).prompt_tokens = ["<script>", "&"];
    const store = createStore(buildGraph(hostile));
    const svg = linkGraphSvg(store.get(), { x: -50, y: -50, k: 1, ky: 1 }, 800, 400);
    expect(svg).not.toContain("<script>");
    expect(svg).toContain("&#60;script&#62;");
  });
});

describe("connection rows", () => {
  const graph = buildGraph(tinyGraphJson());
  const id = (s: string): number => graph.index.get(s)!;

  it("lists positive inputs by weight, then negative ones", () => {
    const store = createStore(graph);
    store.set({ thresholds: { node: 1, edge: 1, density: 1 } });
    const listed = (node: number, side: "input" | "output") => {
      const rows = connectionRows(store.get(), node, side);
      return Array.from({ length: rows.length }, (_, k) => rowAt(graph, rows, k));
    };
    expect(listed(id("1_3_1"), "input")).toEqual([
      { header: "Positive (1)" },
      { edge: expect.any(Number), other: id("0_7_1"), weight: 2 },
      { header: "Negative (1)" },
      { edge: expect.any(Number), other: id("0_5_0"), weight: -1 },
    ]);
    const outs = listed(id("0_7_1"), "output");
    expect(outs.filter((r) => "weight" in r).map((r) => ("weight" in r ? r.weight : 0))).toEqual([2, 1.5]);
  });
});
