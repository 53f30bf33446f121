import { describe, expect, it } from "vitest";
import { buildGraph } from "./graph";
import { tinyGraphJson } from "./fixture";
import { reachWarning, visibilityDone } from "./graphVisibility";
import { focusSegments, labelMargins, logitLabel, MARGIN } from "./linkGraph";
import { featurePageUrl, groupPicked, togglePick } from "./nodeActions";
import { missingSubgraphText } from "./savedSubgraph";
import { createStore, updateTestPanel } from "./state";
import { featureNamer, interventionsFor, restoreRun, savedRows, settingsFromSaved, summary, testRows, type Intervention, type SteeringRun } from "./hypothesis";

describe("the graph's visibility against a subgraph's", () => {
  it("warns only when the graph's privacy blocks the subgraph's link", () => {
    expect(reachWarning("private", "unlisted", true)).toContain("Make the graph unlisted");
    expect(reachWarning("private", "public", false)).toContain("Ask the graph's owner");
    expect(reachWarning("private", "private", true)).toBeNull();
    expect(reachWarning("unlisted", "unlisted", true)).toBeNull();
    expect(reachWarning("public", "public", true)).toBeNull();
  });

  it("says what each graph visibility means once changed", () => {
    expect(visibilityDone("unlisted")).toContain("anyone with a link");
    expect(visibilityDone("private")).toContain("only you");
  });
});

describe("node actions", () => {
  const graph = buildGraph(tinyGraphJson());
  const id = (s: string): number => graph.index.get(s)!;

  it("links features, and only features, to their page", () => {
    expect(featurePageUrl("/features/m/s/", graph.nodes[id("0_7_1")]!)).toBe("/features/m/s/0/7");
    expect(featurePageUrl("/features/m/s/", graph.nodes[id("E_10_0")]!)).toBeNull();
    expect(featurePageUrl("", graph.nodes[id("0_7_1")]!)).toBeNull();
  });

  it("picks pin the node, and the picked become one group", () => {
    const store = createStore(graph);
    togglePick(store, id("0_5_0"));
    togglePick(store, id("0_7_1"));
    expect(store.get().pinned).toEqual([id("0_5_0"), id("0_7_1")]);
    togglePick(store, id("0_7_1"));
    expect(store.get().grouping).toEqual([id("0_5_0")]);
    groupPicked(store); // one picked: no group
    expect(store.get().groups).toEqual([]);
    togglePick(store, id("1_3_1"));
    groupPicked(store);
    expect(store.get().groups).toEqual([{ name: "group 1", members: [id("0_5_0"), id("1_3_1")] }]);
    expect(store.get().grouping).toEqual([]);
  });
});

describe("logit labels", () => {
  it("leave the usual margins for short labels and room for a logit difference", () => {
    const json = tinyGraphJson();
    const store = createStore(buildGraph(json));
    expect(labelMargins(store.get(), 1000, 600)).toEqual({ top: MARGIN.top, right: MARGIN.right });
    const nodes = json["nodes"] as Record<string, unknown>[];
    nodes[6]!["clerp"] = 'Output "logit( Mary)-logit( John)" (p=1.000)';
    nodes[6]!["token_prob"] = 1;
    const diff = createStore(buildGraph(json));
    const label = logitLabel(diff.get().graph.nodes[6]!);
    expect(label).toBe("logit( Mary)-logit( John) 100%".replace(/ /g, "\u00a0").replace(/\u00a0100%$/, " 100%"));
    const margins = labelMargins(diff.get(), 1000, 600);
    expect(margins.top).toBeGreaterThan(label.length * 5 * Math.sin(Math.PI / 3));
    expect(margins.right).toBeGreaterThan(label.length * 5 * Math.cos(Math.PI / 3));
  });
});

describe("a linked subgraph that cannot be opened", () => {
  it("is named as private, deleted or made up on a 404, and as unreachable otherwise", () => {
    expect(missingSubgraphText(404)).toContain("private, was deleted, or never existed");
    expect(missingSubgraphText(0)).toContain("did not answer");
  });
});

describe("the Test panel's rows, saved and restored", () => {
  const graph = buildGraph(tinyGraphJson());
  const id = (s: string): number => graph.index.get(s)!;
  const run = (interventions: Intervention[]): SteeringRun =>
    ({ kind: "intervene", interventions, settings: { mode: "constrained" } }) as unknown as SteeringRun;

  it("names embeddings by their token, not their id", () => {
    const store = createStore(graph);
    store.set({ pinned: [id("E_11_1")] });
    expect(testRows(store.get(), new Map())[0]!.name).toBe('Emb: " cat"');
  });

  it("sends no row that is scaled by 1, and the title neither counts nor shows it", () => {
    const store = createStore(graph);
    store.set({ pinned: [id("1_3_1"), id("0_7_1")] });
    const [a, b] = testRows(store.get(), new Map()).map((r) => r.key);
    const settings = new Map([
      [a!, { action: "scale" as const, value: 2, allPositions: false }],
      [b!, { action: "scale" as const, value: 1, allPositions: false }],
    ]);
    expect(interventionsFor(testRows(store.get(), settings))).toEqual([{ layer: 1, position: 1, feature: 3, action: "scale", value: 2 }]);
    const old = run([
      { layer: 1, position: 1, feature: 3, action: "scale", value: 2 },
      { layer: 0, position: 1, feature: 7, action: "scale", value: 1 },
      { layer: 0, position: 1, feature: 7, action: "scale", value: 1 },
    ]);
    expect(summary(old, featureNamer(store.get()))).toBe("Intervene: ×2 say animal@1 · constrained");
  });

  it("titles runs with the features' labels, the user's first", () => {
    const store = createStore(graph);
    store.set({ labels: new Map([[id("0_7_1"), "cat"]]) });
    const r = run([{ layer: 0, position: 1, feature: 7, action: "ablate" }, { layer: 9, position: 1, feature: 9, action: "ablate" }]);
    expect(summary(r, featureNamer(store.get()))).toBe("Intervene: ablate cat@1, ablate L9/9@1 · constrained");
  });

  it("restores a past run's pins, groups and rows, the rows it left alone unchanged", () => {
    const store = createStore(graph);
    store.set({ pinned: [id("0_5_0")] });
    const restored = restoreRun(store.get(), [
      { layer: 1, position: 1, feature: 3, action: "scale", value: 3 },
      { group: "cats", features: [{ layer: 0, position: 1, feature: 7 }], action: "set", value: 5 },
    ]);
    expect(restored.pinned).toEqual([id("0_5_0"), id("1_3_1"), id("0_7_1")]);
    expect(restored.groups).toEqual([{ name: "cats", members: [id("0_7_1")] }]);
    store.set({ pinned: restored.pinned, groups: restored.groups });
    const rows = testRows(store.get(), restored.settings);
    expect(rows.map((r) => [r.name, r.action, r.value])).toEqual([
      ["cats", "set", 5],
      ["the article", "scale", 1],
      ["say animal", "scale", 3],
    ]);
  });

  it("keeps row settings with a saved subgraph by node ids and reads them back", () => {
    const store = createStore(graph);
    store.set({ pinned: [id("1_3_1"), id("0_7_1")], groups: [{ name: "pair", members: [id("0_7_1"), id("0_5_0")] }] });
    const keys = testRows(store.get(), new Map()).map((r) => r.key);
    updateTestPanel(store, { settings: new Map([[keys[0]!, { action: "scale" as const, value: 4, allPositions: true }]]) });
    const saved = savedRows(store.get());
    expect(saved).toEqual([{ ids: ["0_7_1", "0_5_0"], action: "scale", value: 4, all_positions: true }]);
    const other = createStore(graph);
    other.set({ pinned: [id("0_5_0"), id("0_7_1"), id("1_3_1")], groups: [{ name: "pair", members: [id("0_5_0"), id("0_7_1")] }] });
    const back = settingsFromSaved(other.get(), [...saved, { ids: ["nope"], action: "set", value: 1 }, "junk", { ids: ["1_3_1"], action: "boom", value: 1 }]);
    expect([...back.values()]).toEqual([{ action: "scale", value: 4, allPositions: true }]);
  });
});

describe("the edges of pinned nodes", () => {
  const graph = buildGraph(tinyGraphJson());
  const id = (s: string): number => graph.index.get(s)!;
  const vp = { x: 0, y: 0, k: 1, ky: 1 };
  const count = (buckets: number[][]): number => buckets.reduce((n, b) => n + b.length / 4, 0);

  it("are drawn only between pins, each once; the selected node keeps all of its own", () => {
    const store = createStore(graph);
    store.set({ thresholds: { ...store.get().thresholds, edge: 1 }, pinned: [id("0_7_1"), id("1_3_1")] });
    expect(count(focusSegments(store.get(), vp))).toBe(1); // 0_7_1 -> 1_3_1, not their other edges
    store.set({ selected: id("0_7_1") });
    // All three edges of the selection (E_11_1 in, 1_3_1 and the logit out), then 1_3_1's to pins: none left.
    expect(count(focusSegments(store.get(), vp))).toBe(3);
  });
});
