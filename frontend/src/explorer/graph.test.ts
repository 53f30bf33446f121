import { describe, expect, it } from "vitest";
import { buildGraph, cantorIndex, edgeShare, featureIndex, mergeLinks, orderByDescending, GraphFormatError, Kind, logitToken, nodeLabel } from "./graph";
import { tinyGraphJson } from "./fixture";

describe("buildGraph", () => {
  const graph = buildGraph(tinyGraphJson());

  it("indexes nodes by id and classifies their kinds", () => {
    expect(graph.n).toBe(7);
    expect(graph.kind[graph.index.get("E_10_0")!]).toBe(Kind.Embedding);
    expect(graph.kind[graph.index.get("0_5_0")!]).toBe(Kind.Feature);
    expect(graph.kind[graph.index.get("1_-1_1")!]).toBe(Kind.Error);
    expect(graph.kind[graph.index.get("3_42_1")!]).toBe(Kind.Logit);
  });

  it("puts embeddings on row 0 and logits above the last transcoder layer", () => {
    expect(graph.nLayers).toBe(2);
    expect(graph.row[graph.index.get("E_11_1")!]).toBe(0);
    expect(graph.row[graph.index.get("1_3_1")!]).toBe(2);
    expect(graph.row[graph.index.get("3_42_1")!]).toBe(3);
  });

  it("accepts the old error id form in links and drops links it cannot use", () => {
    expect(graph.index.get("0_1_1")).toBe(graph.index.get("1_-1_1"));
    expect(graph.nEdges).toBe(7);
    expect(graph.dropped.links).toBe(2);
  });

  it("keeps every adjacency segment sorted by |weight| descending", () => {
    const logit = graph.index.get("3_42_1")!;
    const weights = [];
    for (let j = graph.inStart[logit]!; j < graph.inStart[logit + 1]!; j++) {
      weights.push(graph.edgeWeight[graph.inEdges[j]!]);
    }
    expect(weights).toEqual([4, 1.5, 0.5]);
    const cat = graph.index.get("0_7_1")!;
    expect(graph.outStart[cat + 1]! - graph.outStart[cat]!).toBe(2);
  });

  it("keeps each CSR entry's other end next to it", () => {
    for (let j = 0; j < graph.nEdges; j++) {
      expect(graph.outDst[j]).toBe(graph.edgeDst[graph.outEdges[j]!]);
      expect(graph.inSrc[j]).toBe(graph.edgeSrc[graph.inEdges[j]!]);
    }
  });

  it("computes each edge's share of its target's input", () => {
    const feature = graph.index.get("1_3_1")!;
    const e = graph.inEdges[graph.inStart[feature]!]!;
    expect(edgeShare(graph, e)).toBeCloseTo(2 / 3);
  });

  it("reads the transcoder index from the node id, else from a Cantor-paired feature field", () => {
    expect(graph.nodes[graph.index.get("0_7_1")!]!.feature).toBe(7);
    expect(featureIndex("3_123_4", 3, 9999, true)).toBe(123);
    const cantor = ((5 + 77) * (5 + 77 + 1)) / 2 + 77; // cantor(layer 5, index 77)
    expect(cantorIndex(cantor)).toBe(77);
    expect(featureIndex("weird-id", 5, cantor, true)).toBe(77);
    expect(featureIndex("weird-id", 5, 77, false)).toBe(77);
  });

  it("reads logit tokens and probabilities from the clerp", () => {
    expect(logitToken('Output " sat" (p=0.612)')).toBe(" sat");
    const logit = graph.nodes[graph.index.get("3_42_1")!]!;
    expect(logit.token).toBe(" sat");
    expect(logit.tokenProb).toBeCloseTo(0.612);
  });

  it("labels embeddings and errors from the prompt tokens", () => {
    expect(nodeLabel(graph.nodes[graph.index.get("E_11_1")!]!)).toBe('Emb: " cat"');
    expect(nodeLabel(graph.nodes[graph.index.get("0_5_0")!]!, "mine")).toBe("mine");
  });

  it("refuses input that is not a graph, and survives hostile node entries", () => {
    expect(() => buildGraph(null)).toThrow(GraphFormatError);
    expect(() => buildGraph({ nodes: "x", links: [] })).toThrow(GraphFormatError);
    expect(() => buildGraph({ nodes: [null, 3, {}], links: [] })).toThrow(GraphFormatError);
    const messy = buildGraph({
      nodes: [
        { node_id: "0_1_0", layer: 0, ctx_idx: 0, feature_type: "cross layer transcoder", feature: 1 },
        { node_id: "0_1_0", layer: 0, ctx_idx: 0 },
        { node_id: "<script>", layer: "x", ctx_idx: -4 },
        { node_id: "1_2_0", layer: 1, ctx_idx: 1e12 },
        { node_id: "1_3_0", layer: 1, ctx_idx: 999_999, feature_type: "transcoder" },
        { node_id: "5000_3_0", layer: 5000, ctx_idx: 0, feature_type: "transcoder" },
      ],
      links: [{ source: "0_1_0", target: "0_1_0", weight: 1e400 }, "junk"],
    });
    expect(messy.n).toBe(1);
    expect(messy.dropped.nodes).toBe(5);
    expect(messy.nEdges).toBe(0);
  });
});

describe("mergeLinks", () => {
  it("adds links loaded later, once, and keeps the adjacency sorted", () => {
    const json = tinyGraphJson();
    delete json["links"];
    const partial = buildGraph(json);
    expect(partial.partial).toBe(true);
    expect(partial.nEdges).toBe(0);
    const more = mergeLinks(partial, [
      { source: "0_7_1", target: "1_3_1", weight: 2 },
      { source: "0_5_0", target: "1_3_1", weight: -3 },
    ]);
    const again = mergeLinks(more, [
      { source: "0_7_1", target: "1_3_1", weight: 2 },
      { source: "E_11_1", target: "0_7_1", weight: 5 },
      { source: "ghost", target: "0_7_1", weight: 1 },
    ]);
    expect(again.nEdges).toBe(3);
    const target = again.index.get("1_3_1")!;
    const weights = [];
    for (let j = again.inStart[target]!; j < again.inStart[target + 1]!; j++) weights.push(again.edgeWeight[again.inEdges[j]!]);
    expect(weights).toEqual([-3, 2]);
    expect(mergeLinks(again, [])).toBe(again);
  });

  it("knows a skeleton (the strongest links only) is partial from links_total", () => {
    const json = tinyGraphJson();
    json["links_total"] = 50;
    const skeleton = buildGraph(json);
    expect(skeleton.partial).toBe(true);
    expect(skeleton.linksTotal).toBe(50);
    expect(buildGraph(tinyGraphJson()).partial).toBe(false);
  });
});

describe("orderByDescending", () => {
  it("orders like a comparator sort", () => {
    let seed = 3;
    const rand = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
    const values = Float64Array.from({ length: 5000 }, () => Math.abs((rand() - 0.5) * 10 ** (rand() * 8 - 4)));
    values[7] = 0;
    const order = Array.from(orderByDescending(values));
    const expected = Array.from(values.keys()).sort((a, b) => values[b]! - values[a]!);
    expect(order.map((i) => Math.fround(values[i]!))).toEqual(expected.map((i) => Math.fround(values[i]!)));
    expect(new Set(order).size).toBe(5000);
  });
});
