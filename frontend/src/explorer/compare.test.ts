import { describe, expect, it } from "vitest";
import { candidates, markOf, overlayFor, parseCompare, patchFor, tableRows, withCompare, type DiffNode, type GraphDiff, type GraphRow } from "./compare";
import { tinyGraphJson } from "./fixture";
import { buildGraph } from "./graph";

function node(patch: Partial<DiffNode>): DiffNode {
  return {
    kind: "feature",
    status: "shared",
    id_a: null,
    id_b: null,
    layer: 0,
    feature: 1,
    token: null,
    pos_a: 1,
    pos_b: 1,
    label: "",
    influence_a: 0.5,
    influence_b: 0.5,
    delta_influence: 0,
    activation_a: 1,
    activation_b: 1,
    delta_activation: 0,
    probability_a: null,
    probability_b: null,
    patch: null,
    ...patch,
  } as DiffNode;
}

function diffOf(nodes: DiffNode[], edges: GraphDiff["edges"] = []): GraphDiff {
  return { nodes, edges, edges_total: edges.length, patch_limit: 256 } as unknown as GraphDiff;
}

describe("the comparison in the URL", () => {
  it("reads and writes compare and compareView, keeping the other parameters", () => {
    expect(parseCompare("?compare=demo/germany&compareView=side&pinnedIds=a")).toEqual({ ref: "demo/germany", side: true });
    expect(parseCompare("?compare=demo/germany")).toEqual({ ref: "demo/germany", side: false });
    expect(withCompare("pinnedIds=a", { ref: "demo/germany", side: true })).toBe("pinnedIds=a&compare=demo%2Fgermany&compareView=side");
    expect(withCompare("pinnedIds=a&compare=demo%2Fx&compareView=side", null)).toBe("pinnedIds=a");
  });

  it("ignores a malformed graph name", () => {
    expect(parseCompare("?compare=demo")).toBeNull();
    expect(parseCompare("?compare=demo/<script>")).toBeNull();
    expect(parseCompare("?compare=a/b/c")).toBeNull();
  });
});

describe("graphs to compare with", () => {
  it("keeps graphs of the same model and transcoder set, not this one", () => {
    const rows = [
      { model: "demo", transcoder_set: "plt", slug: "france", title: "", prompt: "France" },
      { model: "demo", transcoder_set: "plt", slug: "germany", title: "Germany", prompt: "G" },
      { model: "demo", transcoder_set: "other", slug: "spain", title: "", prompt: "Spain" },
      { model: "else", transcoder_set: "plt", slug: "italy", title: "", prompt: "Italy" },
    ] as unknown as GraphRow[];
    expect(candidates(rows, "demo", "plt", "france")).toEqual([{ ref: "demo/germany", text: "Germany" }]);
  });
});

describe("the overlay", () => {
  const graph = buildGraph(tinyGraphJson());
  const diff = diffOf(
    [
      node({ status: "only_a", id_a: "0_7_1", delta_influence: 0.9 }),
      node({ status: "only_b", id_b: "0_9_1", delta_influence: -0.8 }),
      node({ id_a: "1_3_1", id_b: "1_3_1", delta_influence: -0.2, delta_activation: 1 }),
      node({ id_a: "0_5_0", id_b: "0_5_0", delta_influence: 0.1, delta_activation: -1 }),
      node({ id_a: "E_10_0", id_b: "E_10_0", kind: "token", delta_influence: null, delta_activation: null }),
    ],
    [
      { source: 0, target: 2, status: "only_a", weight_a: 2, weight_b: null, delta_weight: -2 },
      { source: 1, target: 2, status: "only_b", weight_a: null, weight_b: 1, delta_weight: 1 },
      { source: 3, target: 2, status: "shared", weight_a: -1, weight_b: -0.5, delta_weight: 0.5 },
    ],
  );

  it("marks this graph's nodes by the diff and counts the ones only in B", () => {
    const overlay = overlayFor(graph, diff);
    const at = (id: string): string | undefined => overlay.marks.get(graph.index.get(id)!);
    expect([at("0_7_1"), at("1_3_1"), at("0_5_0"), at("E_10_0")]).toEqual(["only_a", "more", "less", "same"]);
    expect(overlay.onlyB).toBe(1);
  });

  it("keeps the edges it can draw, in this graph's node indices", () => {
    const { edges } = overlayFor(graph, diff);
    const i = (id: string): number => graph.index.get(id)!;
    expect(edges).toEqual([
      { source: i("0_7_1"), target: i("1_3_1"), status: "only_a", delta: -2 },
      { source: i("0_5_0"), target: i("1_3_1"), status: "shared", delta: 0.5 },
    ]);
  });

  it("calls a shared node unchanged only when neither its influence nor its activation moved", () => {
    expect(markOf(node({ delta_influence: 0, delta_activation: 0.5 }))).toBe("less");
    expect(markOf(node({ delta_influence: 0, delta_activation: 0 }))).toBe("same");
  });
});

describe("the table and the patch", () => {
  const set = (value: number) => ({ layer: 0, position: 1, feature: 1, action: "set", value });
  const diff = diffOf([
    node({ status: "only_a", id_a: "0_1_1", delta_influence: 0.9, patch: { layer: 0, position: 1, feature: 1, action: "ablate" } }),
    node({ status: "only_b", id_b: "0_2_1", feature: 2, delta_influence: -0.5, patch: set(2) }),
    node({ id_a: "0_3_1", id_b: "0_3_1", feature: 3, delta_influence: 0.2, delta_activation: 1, patch: set(3) }),
    node({ id_a: "0_4_1", id_b: "0_4_1", feature: 4 }),
  ]);

  it("lists what changed in the server's order, unchanged nodes left out", () => {
    expect(tableRows(diff).map((r) => r.name)).toEqual(["L0/1", "L0/2", "L0/3"]);
    expect(tableRows(diff, 1)).toHaveLength(1);
  });

  it("patches every differing feature, or one supernode's, up to the limit", () => {
    expect(patchFor(diff, 256)).toHaveLength(3);
    expect(patchFor(diff, 2)).toHaveLength(2);
    expect(patchFor(diff, 256, new Set(["0_3_1", "0_4_1"]))).toEqual([set(3)]);
  });
});
