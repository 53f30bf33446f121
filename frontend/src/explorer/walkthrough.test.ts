import { describe, expect, it } from "vitest";
import { buildGraph } from "./graph";
import { tinyGraphJson } from "./fixture";
import { reachWarning, visibilityDone } from "./graphVisibility";
import { labelMargins, logitLabel, MARGIN } from "./linkGraph";
import { featurePageUrl, groupPicked, togglePick } from "./nodeActions";
import { missingSubgraphText } from "./savedSubgraph";
import { createStore } from "./state";

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
