import { describe, expect, it } from "vitest";
import { buildGraph } from "./graph";
import { tinyGraphJson } from "./fixture";
import { subgraphToUrlState, toSubgraphFields } from "./savedSubgraph";
import { createStore, fromUrlState, toUrlState } from "./state";

describe("saved subgraphs", () => {
  const graph = buildGraph(tinyGraphJson());
  const id = (s: string): number => graph.index.get(s)!;

  it("round-trips the explorer state through the API's Subgraph fields", () => {
    const store = createStore(graph);
    store.set({
      selected: id("1_3_1"),
      pinned: [id("0_5_0"), id("0_7_1")],
      groups: [{ name: "early", members: [id("0_5_0"), id("0_7_1")] }],
      labels: new Map([[id("0_7_1"), "cat"]]),
      thresholds: { node: 0.6, edge: 0.9, density: 0.01 },
    });
    const fields = toSubgraphFields(store.get());
    expect(fields).toEqual({
      pinned_ids: ["0_5_0", "0_7_1"],
      supernodes: [["early", "0_5_0", "0_7_1"]],
      node_labels: { "0_7_1": "cat" },
      thresholds: { node: 0.6, edge: 0.9, density: 0.01 },
      clicked_id: "1_3_1",
      test_rows: [],
    });
    const other = createStore(graph);
    other.set(fromUrlState(graph, subgraphToUrlState(JSON.parse(JSON.stringify(fields))), other.get().thresholds));
    expect(toUrlState(other.get())).toEqual({ ...toUrlState(store.get()), viewport: null });
  });

  it("ignores malformed fields", () => {
    const state = subgraphToUrlState({ pinned_ids: "x", supernodes: [[1]], node_labels: [3], thresholds: { node: "a", edge: 9 }, clicked_id: 5 });
    expect(state.pinnedIds).toEqual([]);
    expect(state.supernodes).toEqual([]);
    expect(state.labels).toEqual([]);
    expect(state.pruningThreshold).toBeNull();
    expect(state.edgeThreshold).toBe(1);
    expect(state.clickedId).toBeNull();
    expect(subgraphToUrlState(null)).toEqual(subgraphToUrlState({}));
  });
});
