import { describe, expect, it } from "vitest";
import { graphFromSidecarBody, tinyGraphJson } from "./fixture";
import { buildGraph, type Graph } from "./graph";
import { documentNodes } from "./graphBinary";
import { GRAPH_BINARY_VECTORS } from "./graphBinary.gen";
import { graphFromBytes } from "./linkScan";
import { packNodes, unpackNodes } from "./nodeColumns";

/** What postMessage does to the worker's reply: a structured clone (the buffers transferred). */
const posted = <T>(packed: T): T => structuredClone(packed);

/** A graph with what the columns must carry exactly: unicode and empty labels, ids in both
 * error spellings, null and huge feature indices, NaN and -0 values, logits with and without a
 * token_prob, a duplicate id (dropped) and a prompt shorter than the positions used. */
function awkwardGraphJson(): Record<string, unknown> {
  const json = tinyGraphJson();
  const nodes = json["nodes"] as Record<string, unknown>[];
  nodes.push(
    { node_id: "1_9999999999_0", feature: null, layer: "1", ctx_idx: 0, feature_type: "cross layer transcoder", clerp: "é 日本 🐈 \u0000 \"q\"", influence: -0, activation: "x" },
    { node_id: "0_1_0", feature: null, layer: 1, ctx_idx: 0, feature_type: "mlp reconstruction error", clerp: "", influence: 0.95 },
    { node_id: "0_5_0", feature: 5, layer: "0", ctx_idx: 0, feature_type: "cross layer transcoder", clerp: "a duplicate id" },
    { node_id: "4_7_5", feature: 7, layer: "4", ctx_idx: 5, feature_type: "logit", clerp: "Output 'naïve'" },
    { node_id: "E_3_7", feature: null, layer: "E", ctx_idx: 7, feature_type: "embedding", clerp: "" },
  );
  return json;
}

/** The graph's node records and id index (in insertion order), the rest as it is. */
function nodesOf(graph: Pick<Graph, "nodes" | "index" | "n">): unknown {
  return { nodes: graph.nodes, index: [...graph.index], n: graph.n };
}

describe("packNodes / unpackNodes", () => {
  const sidecar = async (binary: string): Promise<Graph> =>
    graphFromSidecarBody(new Blob([Uint8Array.from(atob(binary), (c) => c.charCodeAt(0))]).stream());
  const graphs: [string, () => Graph | Promise<Graph>][] = [
    ["the tiny fixture", () => buildGraph(tinyGraphJson())],
    ["awkward nodes", () => buildGraph(awkwardGraphJson())],
    ["awkward nodes read from bytes", () => graphFromBytes(new TextEncoder().encode(JSON.stringify(awkwardGraphJson())))],
    ...GRAPH_BINARY_VECTORS.map((v): [string, () => Promise<Graph>] => [`sidecar ${v.name}`, () => sidecar(v.binary)]),
  ];

  it.each(graphs)("give back %s's node records and id index as graphNodes made them", async (_name, make) => {
    const graph = await make();
    const unpacked = unpackNodes(posted(packNodes(graph)));
    expect(nodesOf(unpacked)).toEqual(nodesOf(graph));
    // toEqual treats -0 and 0 alike only through Object.is: check the signs too.
    expect(unpacked.nodes.map((node) => Object.is(node.influence, -0))).toEqual(graph.nodes.map((node) => Object.is(node.influence, -0)));
  });

  it("carry the rest of the graph through as it was", () => {
    const graph = buildGraph(awkwardGraphJson());
    const { nodes: _nodes, index: _index, ...rest } = unpackNodes(posted(packNodes(graph)));
    const { nodes: _n, index: _i, ...expected } = graph;
    expect(rest).toEqual(expected);
  });

  it("carry a graph's nodes alone (what the worker parses of a sidecar) through as they were", () => {
    const nodes = documentNodes(new TextEncoder().encode(JSON.stringify(awkwardGraphJson())));
    const packed = packNodes(nodes);
    // Not the parsed records (100k objects to clone): the page reads them again on export.
    expect("rawNodes" in packed).toBe(false);
    const unpacked = unpackNodes(posted(packed));
    expect(nodesOf(unpacked)).toEqual(nodesOf(nodes));
    const { nodes: _nodes, index: _index, ...rest } = unpacked;
    const { nodes: _n, index: _i, ...expected } = nodes;
    expect(rest).toEqual(expected);
    expect([rest.records, rest.droppedNodes, rest.linksListed]).toEqual([nodes.n + 1, 1, true]);
  });

  it("send no node objects and no Map", () => {
    const packed = packNodes(buildGraph(awkwardGraphJson()));
    expect("nodes" in packed || "index" in packed).toBe(false);
    expect(packed.nodeColumns.text).toContain("🐈");
  });

  it("read an error node's old id form as the node, and the awkward nodes as parsed", () => {
    const graph = unpackNodes(posted(packNodes(buildGraph(awkwardGraphJson()))));
    expect(graph.index.get("0_1_1")).toBe(graph.index.get("1_-1_1"));
    const big = graph.nodes[graph.index.get("1_9999999999_0")!]!;
    expect([big.feature, big.clerp, Number.isNaN(big.activation)]).toEqual([9999999999, "é 日本 🐈 \u0000 \"q\"", true]);
    const logit = graph.nodes[graph.index.get("4_7_5")!]!;
    expect([logit.token, Number.isNaN(logit.tokenProb)]).toEqual(["naïve", true]);
    expect(graph.nodes[graph.index.get("E_3_7")!]!.token).toBe("");
  });
});
