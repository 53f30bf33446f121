import { describe, expect, it } from "vitest";
import { buildGraph } from "./graph";
import { tinyGraphJson } from "./fixture";
import { aggregate, groupNodes, ungroup } from "./supernodes";

describe("supernode aggregation", () => {
  const graph = buildGraph(tinyGraphJson());
  const id = (s: string): number => graph.index.get(s)!;

  it("treats each pinned node outside a group as its own unit", () => {
    const agg = aggregate(graph, [id("0_5_0"), id("1_3_1")], []);
    expect(agg.units.map((u) => u.members)).toEqual([[id("0_5_0")], [id("1_3_1")]]);
    expect(agg.edges).toEqual([{ from: 0, to: 1, weight: -1, count: 1 }]);
  });

  it("sums the weights of member edges between groups and ignores edges inside a group", () => {
    const pinned = [id("0_5_0"), id("0_7_1"), id("1_3_1"), id("3_42_1")];
    const groups = [{ name: "early", members: [id("0_5_0"), id("0_7_1")] }];
    const agg = aggregate(graph, pinned, groups);
    expect(agg.units).toHaveLength(3);
    const early = agg.unitOf.get(id("0_5_0"))!;
    const late = agg.unitOf.get(id("1_3_1"))!;
    const logit = agg.unitOf.get(id("3_42_1"))!;
    const edge = (a: number, b: number) => agg.edges.find((e) => e.from === a && e.to === b);
    expect(edge(early, late)).toEqual({ from: early, to: late, weight: 1, count: 2 });
    expect(edge(early, logit)?.weight).toBe(1.5);
    expect(edge(late, logit)?.weight).toBe(4);
  });

  it("moves nodes between groups and drops groups left empty", () => {
    let groups = groupNodes([], [1, 2], "a");
    groups = groupNodes(groups, [2, 3], "b");
    expect(groups).toEqual([
      { name: "a", members: [1] },
      { name: "b", members: [2, 3] },
    ]);
    groups = groupNodes(groups, [1], "c");
    expect(groups.map((g) => g.name)).toEqual(["b", "c"]);
    expect(ungroup(groups, 0)).toEqual([{ name: "c", members: [1] }]);
  });
});
