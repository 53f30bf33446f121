import { describe, expect, it } from "vitest";
import { buildGraph } from "./graph";
import { tinyGraphJson } from "./fixture";
import { createStore, fromUrlState, toUrlState, togglePin } from "./state";
import { parseUrlState, serialiseUrlState } from "./urlState";

describe("explorer state and the URL", () => {
  const graph = buildGraph(tinyGraphJson());
  const id = (s: string): number => graph.index.get(s)!;

  it("reopens exactly the state a link was made from", () => {
    const store = createStore(graph);
    store.set({
      selected: id("1_3_1"),
      pinned: [id("0_5_0"), id("0_7_1"), id("3_42_1")],
      groups: [{ name: "early", members: [id("0_5_0"), id("0_7_1")] }],
      labels: new Map([[id("3_42_1"), "the answer"]]),
      thresholds: { node: 0.5, edge: 0.9, density: 1 },
      viewport: { x: 1, y: 2, k: 3, ky: 4 },
    });
    const link = serialiseUrlState(toUrlState(store.get()));
    const other = createStore(graph);
    other.set(fromUrlState(graph, parseUrlState(link), other.get().thresholds));
    expect(toUrlState(other.get())).toEqual(toUrlState(store.get()));
  });

  it("drops ids the graph does not have and pins group members", () => {
    const url = parseUrlState(
      "?clickedId=9_9_9&pinnedIds=0_5_0,nope&supernodes=" + encodeURIComponent(JSON.stringify([["g", "0_7_1", "ghost"]])),
    );
    const patch = fromUrlState(graph, url, { node: 0.8, edge: 1, density: 1 });
    expect(patch.selected).toBe(-1);
    expect(patch.pinned).toEqual([id("0_5_0"), id("0_7_1")]);
    expect(patch.groups).toEqual([{ name: "g", members: [id("0_7_1")] }]);
  });

  it("accepts old-style error ids in links", () => {
    const patch = fromUrlState(graph, parseUrlState("?pinnedIds=0_1_1"), { node: 0.8, edge: 1, density: 1 });
    expect(patch.pinned).toEqual([id("1_-1_1")]);
  });

  it("keeps a pruned node visible while it is pinned or selected", () => {
    const store = createStore(graph);
    store.set({ thresholds: { node: 0, edge: 1, density: 1 } });
    expect(store.get().view.visible[id("1_3_1")]).toBe(0);
    togglePin(store, id("1_3_1"));
    expect(store.get().view.visible[id("1_3_1")]).toBe(1);
    togglePin(store, id("1_3_1"));
    store.set({ selected: id("1_3_1") });
    expect(store.get().view.visible[id("1_3_1")]).toBe(1);
  });

  it("unpinning a node takes it out of its group", () => {
    const store = createStore(graph);
    store.set({ pinned: [id("0_5_0"), id("0_7_1")], groups: [{ name: "g", members: [id("0_5_0"), id("0_7_1")] }] });
    togglePin(store, id("0_5_0"));
    expect(store.get().groups).toEqual([{ name: "g", members: [id("0_7_1")] }]);
  });
});
