import { describe, expect, it, vi } from "vitest";
import { buildGraph } from "./graph";
import { tinyGraphJson } from "./fixture";
import { countVisibleEdges } from "./prune";
import { nearest } from "./spatial";
import { addExplanations, createStore, fromUrlState, graphThresholds, knownEdgeCount, nodeName, visibleEdgeCount, setLabel, setRowSettings, toUrlState, togglePin, updateTestPanel, viewGrid } from "./state";
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

  it("opens a link's state with the view that setting it after opening gives", () => {
    const url = parseUrlState(`clickedId=1_3_1&pinnedIds=0_5_0,3_42_1&pruningThreshold=0.2&edgeThreshold=0.9`);
    const later = createStore(graph);
    later.set(fromUrlState(graph, url, later.get().thresholds));
    const opened = createStore(graph, fromUrlState(graph, url, graphThresholds(graph)));
    const { millis: _a, ...view } = opened.get().view;
    const { millis: _b, ...expected } = later.get().view;
    expect(view).toEqual(expected);
    expect(view.visible[id("1_3_1")]).toBe(1); // selected: kept in view below the threshold
    expect(toUrlState(opened.get())).toEqual(toUrlState(later.get()));
  });

  it("counts a view's visible edges when asked, from the last count made, as a full count does", () => {
    let seed = 9;
    const rand = (): number => (seed = (seed * 16807) % 2147483647) / 2147483647;
    const nodes = Array.from({ length: 80 }, (_, k) => ({ node_id: `${k % 5}_${k}_0`, feature: k, layer: k % 5, ctx_idx: 0, feature_type: "clt", influence: rand(), clerp: "" }));
    const links = Array.from({ length: 2000 }, () => ({ source: nodes[Math.floor(rand() * 80)]!.node_id, target: nodes[Math.floor(rand() * 80)]!.node_id, weight: rand() - 0.5 }));
    const big = buildGraph({ metadata: { prompt_tokens: ["a"] }, nodes, links });
    const store = createStore(big);
    expect(knownEdgeCount(store.get().view)).toBeUndefined();
    for (let step = 0; step < 40; step++) {
      const thresholds = { node: rand(), edge: step % 7 === 0 ? rand() : store.get().thresholds.edge, density: 1 };
      store.set(step % 5 === 0 ? { pinned: [Math.floor(rand() * big.n)], thresholds } : { thresholds });
      const view = store.get().view;
      // Counted at some steps only, as the toolbar does when the page is idle.
      if (step % 3 !== 0) continue;
      expect(visibleEdgeCount(big, view)).toBe(countVisibleEdges(big, view.visible, thresholds.edge));
      expect(knownEdgeCount(view)).toBe(countVisibleEdges(big, view.visible, thresholds.edge));
    }
  });

  it("builds a view's hit-test grid once, when asked, over the nodes that view shows", () => {
    const store = createStore(graph);
    const target = id("3_42_1");
    const before = store.get().view;
    const grid = viewGrid(before);
    expect(viewGrid(before)).toBe(grid);
    const { x, y } = before.layout;
    expect(nearest(grid, x[target]!, y[target]!, 1)).toBe(target);
    store.set({ thresholds: { ...store.get().thresholds, node: 0.5 } });
    const after = store.get().view;
    expect(after).not.toBe(before);
    expect(viewGrid(after)).not.toBe(grid);
    expect(viewGrid(after).x).toBe(after.layout.x);
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

describe("the explanations slice", () => {
  const graph = buildGraph(tinyGraphJson());

  it("tells its watchers about new explanations, and only about real changes", () => {
    const store = createStore(graph);
    const seen = vi.fn();
    store.watch(["explanations"], (s) => seen([...s.explanations]));
    addExplanations(store, [[1, "says Paris"], [2, "capital cities"]]);
    addExplanations(store, [[2, "capital cities"]]);
    addExplanations(store, [[2, "capitals"]]);
    expect(seen.mock.calls).toEqual([
      [[[1, "says Paris"], [2, "capital cities"]]],
      [[[1, "says Paris"], [2, "capitals"]]],
    ]);
  });

  it("never changes a map a subscriber was given", () => {
    const store = createStore(graph);
    addExplanations(store, [[1, "a"]]);
    const before = store.get().explanations;
    addExplanations(store, [[1, "b"]]);
    expect(before.get(1)).toBe("a");
    expect(store.get().explanations.get(1)).toBe("b");
  });
});

describe("node names", () => {
  // The fixture's features carry labels from the file; a generated graph's carry none.
  const json = tinyGraphJson();
  for (const node of json["nodes"] as { clerp: string }[]) if (node.clerp !== "the article" && !node.clerp.startsWith("Output")) node.clerp = "";
  const graph = buildGraph(json);
  const cats = graph.nodes.findIndex((n) => n.id === "0_7_1");

  it("names a feature by its best explanation, and by its id with names off", () => {
    const store = createStore(graph);
    expect(nodeName(store.get(), cats)).toBe("L0/7");
    addExplanations(store, [[cats, 'fires on " cat"']]);
    expect(nodeName(store.get(), cats)).toBe('fires on " cat"');
    store.set({ showNames: false });
    expect(nodeName(store.get(), cats)).toBe("L0/7");
  });

  it("keeps a label typed by a person or given by the file over any explanation", () => {
    const store = createStore(graph);
    const article = graph.nodes.findIndex((n) => n.id === "0_5_0");
    addExplanations(store, [[cats, "auto"], [article, "auto"]]);
    expect(nodeName(store.get(), article)).toBe("the article");
    setLabel(store, cats, "my cat feature");
    expect(nodeName(store.get(), cats)).toBe("my cat feature");
  });
});

describe("the Test panel slice", () => {
  const graph = buildGraph(tinyGraphJson());

  it("starts idle with nothing chosen", () => {
    expect(createStore(graph).get().test).toEqual({ settings: new Map(), busy: false, status: { text: "", bad: false }, lastRun: null });
  });

  it("keeps each row's settings by key and leaves the rest of the slice alone", () => {
    const store = createStore(graph);
    updateTestPanel(store, { busy: true, status: { text: "Submitting…", bad: false } });
    setRowSettings(store, "g:0", { action: "scale", value: 3, allPositions: false });
    setRowSettings(store, "n:2", { action: "ablate", value: 0, allPositions: true });
    setRowSettings(store, "g:0", { action: "set", value: 1.5, allPositions: false });
    const { test } = store.get();
    expect([...test.settings]).toEqual([
      ["g:0", { action: "set", value: 1.5, allPositions: false }],
      ["n:2", { action: "ablate", value: 0, allPositions: true }],
    ]);
    expect(test.busy).toBe(true);
    expect(test.status.text).toBe("Submitting…");
  });

  it("announces a change of the slice to its watchers with the state before it", () => {
    const store = createStore(graph);
    const busy: [boolean, boolean][] = [];
    store.watch(["test"], (s, previous) => busy.push([previous.test.busy, s.test.busy]));
    updateTestPanel(store, { busy: true });
    updateTestPanel(store, { busy: false });
    expect(busy).toEqual([[false, true], [true, false]]);
  });
});
