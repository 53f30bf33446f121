import { afterEach, describe, expect, it, vi } from "vitest";
import { buildGraph, rawNode, type Graph } from "./graph";
import { GraphBinaryError, graphFromBinary } from "./graphBinary";
import { GRAPH_BINARY_VECTORS, type GraphBinaryVector } from "./graphBinary.gen";
import { loadGraphFrom } from "./graphSource";
import { exportGraphJson } from "./exporting";
import { createStore } from "./state";

const bytesOf = (vector: GraphBinaryVector): Uint8Array<ArrayBuffer> => Uint8Array.from(atob(vector.binary), (c) => c.charCodeAt(0));

const ARRAYS = [
  "kind", "row", "ctx", "influence", "nodeSource", "edgeSrc", "edgeDst", "edgeWeight", "edgeCumBefore",
  "outStart", "outEdges", "inStart", "inEdges", "outDst", "inSrc", "inputAbsSum",
] as const;

/** Everything the page reads of a graph, in plain values (typed arrays as arrays). */
function plain(graph: Graph): Record<string, unknown> {
  const out: Record<string, unknown> = {
    metadata: graph.metadata, qParams: graph.qParams, nodes: graph.nodes, index: [...graph.index], n: graph.n,
    nLayers: graph.nLayers, nCtx: graph.nCtx, nEdges: graph.nEdges, partial: graph.partial, linksTotal: graph.linksTotal,
    dropped: graph.dropped, records: Array.from({ length: graph.n }, (_, i) => rawNode(graph, i)),
  };
  for (const name of ARRAYS) out[name] = Array.from(graph[name]);
  return out;
}

/** A copy of a sidecar with one u32 of its header or body replaced. */
function withU32(bytes: Uint8Array, at: number, value: number): Uint8Array {
  const copy = bytes.slice();
  new DataView(copy.buffer).setUint32(at, value, true);
  return copy;
}

const u32 = (bytes: Uint8Array, at: number): number => new DataView(bytes.buffer, bytes.byteOffset).getUint32(at, true);

describe("graphFromBinary", () => {
  it.each(GRAPH_BINARY_VECTORS.map((v) => [v.name, v] as const))("reads the Python encoder's %s as JSON.parse + buildGraph read the JSON", (_name, vector) => {
    const fromJson = buildGraph(JSON.parse(vector.json));
    const fromBinary = graphFromBinary(bytesOf(vector));
    expect(plain(fromBinary)).toEqual(plain(fromJson));
    // Bit for bit, -0 included (toEqual would also accept +0 for -0 only by Object.is: it does not).
    expect(Array.from(fromBinary.edgeWeight).map((w) => Object.is(w, -0))).toEqual(Array.from(fromJson.edgeWeight).map((w) => Object.is(w, -0)));
  });

  it("covers what the vectors are for: both weight widths, duplicates, no links", () => {
    const widths = GRAPH_BINARY_VECTORS.map((v) => u32(bytesOf(v), 24));
    expect(widths).toEqual([8, 4, 4]);
    expect(GRAPH_BINARY_VECTORS.map((v) => graphFromBinary(bytesOf(v)).nEdges)).toEqual([7, 6, 0]);
  });

  it("reads bytes that do not start at an aligned offset", () => {
    const bytes = bytesOf(GRAPH_BINARY_VECTORS[0]!);
    const shifted = new Uint8Array(bytes.length + 3);
    shifted.set(bytes, 3);
    expect(plain(graphFromBinary(shifted.subarray(3)))).toEqual(plain(graphFromBinary(bytes)));
  });

  const bytes = bytesOf(GRAPH_BINARY_VECTORS[0]!);
  const sourceAt = u32(bytes, 40);
  const weightAt = u32(bytes, 48);
  it.each([
    ["bad magic", (() => { const b = bytes.slice(); b[0] = 0x58; return b; })(), /bad magic/],
    ["another version", withU32(bytes, 8, 2), /version 2/],
    ["a truncated file", bytes.subarray(0, bytes.length - 8), /header does not match/],
    ["a section that overlaps another", withU32(bytes, 44, u32(bytes, 44) - 8), /header does not match/],
    ["an odd weight width", withU32(bytes, 24, 2), /header does not match/],
    ["a link to a node that is not there", withU32(bytes, sourceAt, 6), /names no node/],
    ["a link index past 2^31", withU32(bytes, sourceAt, 0x80000000), /names no node/],
    ["links out of order", (() => { const b = bytes.slice(); new DataView(b.buffer).setFloat64(weightAt + 8 * 6, 100, true); return b; })(), /explorer's order/],
    ["a weight that is not finite", (() => { const b = bytes.slice(); new DataView(b.buffer).setFloat64(weightAt, NaN, true); return b; })(), /finite/],
    ["too few bytes for a header", bytes.subarray(0, 40), /too short/],
  ])("refuses %s", (_name, input, message) => {
    expect(() => graphFromBinary(input)).toThrow(GraphBinaryError);
    expect(() => graphFromBinary(input)).toThrow(message);
  });

  it("refuses a sidecar whose nodes the explorer would not all keep (link ends would be misread)", () => {
    const vector = GRAPH_BINARY_VECTORS[0]!;
    const document = JSON.parse(vector.json) as { nodes: { ctx_idx: number }[] };
    const text = new TextEncoder().encode(JSON.stringify({ ...document, nodes: document.nodes.map((n, i) => (i === 1 ? { ...n, ctx_idx: -1 } : n)) }));
    const original = bytesOf(vector);
    // Rebuild the sidecar around the edited document: same arrays, offsets moved to match.
    const pad = (n: number): number => (8 - (n % 8)) % 8;
    const arrays = original.subarray(u32(original, 40));
    const out = new Uint8Array(96 + text.length + pad(text.length) + arrays.length);
    out.set(original.subarray(0, 96));
    out.set(text, 96);
    out.set(arrays, 96 + text.length + pad(text.length));
    const shift = out.length - original.length;
    const view = new DataView(out.buffer);
    view.setUint32(36, text.length, true);
    for (const at of [40, 44, 48, 52]) view.setUint32(at, u32(original, at) + shift, true);
    expect(() => graphFromBinary(out)).toThrow(/not the explorer's nodes/);
  });
});

describe("export of a graph read from its sidecar", () => {
  it.each(GRAPH_BINARY_VECTORS.map((v) => [v.name, v] as const))("writes what the JSON path writes, the artifact's graph (%s)", (_name, vector) => {
    const artifact = JSON.parse(vector.json) as { metadata: unknown; nodes: unknown[]; links: { source: string; target: string; weight: number }[] };
    const fromBinary = exportGraphJson(createStore(graphFromBinary(bytesOf(vector))).get());
    expect(fromBinary).toEqual(exportGraphJson(createStore(buildGraph(artifact)).get()));
    expect(fromBinary["metadata"]).toEqual(artifact.metadata);
    expect(fromBinary["nodes"]).toEqual(artifact.nodes);
    const key = (l: { source: string; target: string; weight: number }): string => `${l.source} ${l.target} ${Object.is(l.weight, -0) ? "-0" : l.weight}`;
    const links = fromBinary["links"] as { source: string; target: string; weight: number }[];
    expect(links.map(key).sort()).toEqual(artifact.links.map(key).sort());
  });
});

describe("loadGraphFrom", () => {
  afterEach(() => vi.unstubAllGlobals());
  const vector = GRAPH_BINARY_VECTORS[0]!;
  const serve = (routes: Record<string, () => Response>) =>
    vi.stubGlobal("fetch", vi.fn(async (url: string) => (routes[url] ?? (() => new Response("", { status: 404 })))()));

  it("reads the sidecar when the server offers one", async () => {
    serve({ "/g.bin": () => new Response(bytesOf(vector)), "/g.json": () => new Response(vector.json) });
    const loaded = await loadGraphFrom({ json: "/g.json", binary: "/g.bin" });
    expect(loaded.source).toBe("binary");
    expect(plain(loaded.graph)).toEqual(plain(buildGraph(JSON.parse(vector.json))));
  });

  it.each([
    ["is missing (an older server)", () => new Response("", { status: 404 })],
    ["is not a sidecar", () => new Response('{"nodes": []}')],
  ])("reads the JSON when the sidecar %s", async (_name, sidecar) => {
    vi.spyOn(console, "warn").mockImplementation(() => {});
    serve({ "/g.bin": sidecar, "/g.json": () => new Response(vector.json) });
    const loaded = await loadGraphFrom({ json: "/g.json", binary: "/g.bin" });
    expect(loaded.source).toBe("json");
    expect(plain(loaded.graph)).toEqual(plain(buildGraph(JSON.parse(vector.json))));
  });

  it("reads the JSON when no sidecar is offered, and says why a graph cannot be loaded", async () => {
    serve({ "/g.json": () => new Response(vector.json) });
    expect((await loadGraphFrom({ json: "/g.json" })).source).toBe("json");
    await expect(loadGraphFrom({ json: "/missing.json" })).rejects.toThrow("HTTP 404");
  });
});
