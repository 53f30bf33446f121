import { describe, expect, it } from "vitest";
import { buildGraph } from "./graph";
import { tinyGraphJson } from "./fixture";
import { searchGraph } from "./search";

describe("searchGraph", () => {
  const graph = buildGraph(tinyGraphJson());
  const id = (s: string): number => graph.index.get(s)!;

  it("finds a feature by its L/index id", () => {
    expect(searchGraph(graph, "L0/7")).toEqual([id("0_7_1")]);
    expect(searchGraph(graph, "1/3")).toEqual([id("1_3_1")]);
    expect(searchGraph(graph, "L9/9")).toEqual([]);
  });

  it("finds nodes by label, token text and node id", () => {
    expect(searchGraph(graph, "feline")).toEqual([id("0_7_1")]);
    expect(searchGraph(graph, "sat")).toEqual([id("3_42_1")]);
    expect(searchGraph(graph, "cat")[0]).toBe(id("0_7_1")); // label prefix outranks token match
    expect(searchGraph(graph, "cat")).toContain(id("E_11_1"));
    expect(searchGraph(graph, "1_3_1")[0]).toBe(id("1_3_1"));
  });

  it("searches user labels and loaded explanations", () => {
    const labels = new Map([[id("0_5_0"), "determiner"]]);
    expect(searchGraph(graph, "determiner", { labels })).toEqual([id("0_5_0")]);
    const explanation = (i: number) => (i === id("1_3_1") ? "predicts an animal verb" : undefined);
    expect(searchGraph(graph, "verb", { explanation })).toEqual([id("1_3_1")]);
  });

  it("finds the features at a prompt token, after the token itself", () => {
    const hits = searchGraph(graph, "cat");
    // "say animal" sits at " cat", though its label does not say so.
    expect(hits).toEqual([id("0_7_1"), id("1_-1_1"), id("E_11_1"), id("1_3_1")]);
    expect(searchGraph(graph, "ca")).not.toContain(id("1_3_1")); // the whole token, not a part
  });

  it("returns nothing for an empty query", () => {
    expect(searchGraph(graph, "   ")).toEqual([]);
  });
});
