import { afterEach, describe, expect, it, vi } from "vitest";
import { buildGraph, heldRecords, type Graph } from "./graph";
import { GraphBinaryError, sidecarRecords } from "./graphBinary";
import { graphFromSidecarBody } from "./fixture";
import { GRAPH_BINARY_VECTORS, type GraphBinaryVector } from "./graphBinary.gen";
import { loadGraphFrom, nodeRecords, thisThread, type GraphParsers } from "./graphSource";
import { exportGraphJson } from "./exporting";
import { createStore } from "./state";

const bytesOf = (vector: GraphBinaryVector): Uint8Array<ArrayBuffer> => Uint8Array.from(atob(vector.binary), (c) => c.charCodeAt(0));
/** `bytes` as a response body streams them: in chunks of `size` bytes. */
function streamOf(bytes: Uint8Array, size = 64 * 1024): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream({
    pull(controller) {
      if (at >= bytes.length) return controller.close();
      controller.enqueue(bytes.slice(at, at + size));
      at += size;
    },
  });
}
const graphFromBinary = async (bytes: Uint8Array, size?: number): Promise<Graph> => graphFromSidecarBody(streamOf(bytes, size));
const shaOf = (graph: Graph): string => ("sidecar" in graph.rawNodes ? graph.rawNodes.artifactSha256 : "");
/** The node records of a graph: held, or read again from `sidecar` (the bytes it came from). */
const recordsOf = async (graph: Graph, sidecar?: Uint8Array): Promise<unknown[]> => heldRecords(graph.rawNodes) ?? sidecarRecords(streamOf(sidecar!), shaOf(graph));

const ARRAYS = [
  "kind", "row", "ctx", "influence", "nodeSource", "edgeSrc", "edgeDst", "edgeWeight", "edgeAbsBefore",
  "outStart", "outEdges", "inStart", "inEdges", "outDst", "inSrc", "inputAbsSum",
] as const;

/** Everything the page reads of a graph, in plain values (typed arrays as arrays). */
function plain(graph: Graph, records: unknown[]): Record<string, unknown> {
  const out: Record<string, unknown> = {
    metadata: graph.metadata, qParams: graph.qParams, nodes: graph.nodes, index: [...graph.index], n: graph.n,
    nLayers: graph.nLayers, nCtx: graph.nCtx, nEdges: graph.nEdges, edgeAbsTotal: graph.edgeAbsTotal, partial: graph.partial, linksTotal: graph.linksTotal,
    dropped: graph.dropped, records: Array.from({ length: graph.n }, (_, i) => records[graph.nodeSource[i]!]),
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

describe("openSidecar / sidecarEdges / sidecarGraph", () => {
  it.each(GRAPH_BINARY_VECTORS.map((v) => [v.name, v] as const))("reads the Python encoder's %s as JSON.parse + buildGraph read the JSON", async (_name, vector) => {
    const fromJson = buildGraph(JSON.parse(vector.json));
    const fromBinary = await graphFromBinary(bytesOf(vector));
    expect(plain(fromBinary, await recordsOf(fromBinary, bytesOf(vector)))).toEqual(plain(fromJson, await recordsOf(fromJson)));
    // Bit for bit, -0 included (toEqual would also accept +0 for -0 only by Object.is: it does not).
    expect(Array.from(fromBinary.edgeWeight).map((w) => Object.is(w, -0))).toEqual(Array.from(fromJson.edgeWeight).map((w) => Object.is(w, -0)));
  });

  it("covers what the vectors are for: both weight widths, duplicates, no links", async () => {
    const widths = GRAPH_BINARY_VECTORS.map((v) => u32(bytesOf(v), 24));
    expect(widths).toEqual([8, 4, 4]);
    const graphs = await Promise.all(GRAPH_BINARY_VECTORS.map((v) => graphFromBinary(bytesOf(v))));
    expect(graphs.map((g) => g.nEdges)).toEqual([7, 6, 0]);
    // float32 weights are kept as float32 (half the memory), float64 ones as float64.
    expect(graphs.map((g) => g.edgeWeight.BYTES_PER_ELEMENT)).toEqual([8, 4, 4]);
  });

  it.each([1, 7, 96, 100, 1 << 20])("reads a body however it is chunked (%i-byte chunks)", async (size) => {
    for (const vector of GRAPH_BINARY_VECTORS) {
      const bytes = bytesOf(vector);
      const graph = await graphFromBinary(bytes, size);
      expect(plain(graph, await recordsOf(graph, bytes))).toEqual(plain(await graphFromBinary(bytes), await recordsOf(graph, bytes)));
    }
  });

  it("keeps nothing of the sidecar's document: its node records are read again on export", async () => {
    const graph = await graphFromBinary(bytesOf(GRAPH_BINARY_VECTORS[0]!));
    expect(graph.rawNodes).toEqual({ sidecar: "/g.bin", artifactSha256: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect(heldRecords(graph.rawNodes)).toBeNull();
  });

  it("reads the node records again only from the sidecar of the same artifact, and not its links", async () => {
    const [first, second] = GRAPH_BINARY_VECTORS;
    const graph = await graphFromBinary(bytesOf(first!));
    // A body that fails after the document: the links are never read.
    const documentEnd = u32(bytesOf(first!), 40);
    let pulled = 0;
    const failing = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (pulled >= documentEnd) return controller.error(new Error("read past the document"));
        controller.enqueue(bytesOf(first!).slice(pulled, pulled + 64));
        pulled += 64;
      },
    });
    expect(await sidecarRecords(failing, shaOf(graph))).toEqual(JSON.parse(first!.json).nodes);
    // Another artifact's sidecar (the graph was replaced since the page opened it).
    await expect(sidecarRecords(streamOf(bytesOf(second!)), shaOf(graph))).rejects.toThrow(/changed since the page opened it/);
    await expect(sidecarRecords(streamOf(bytesOf(first!).subarray(0, 40)), shaOf(graph))).rejects.toThrow(/too short/);
  });

  const bytes = bytesOf(GRAPH_BINARY_VECTORS[0]!);
  const sourceAt = u32(bytes, 40);
  const weightAt = u32(bytes, 48);
  const longer = new Uint8Array(bytes.length + 8);
  longer.set(bytes);
  it.each([
    ["bad magic", (() => { const b = bytes.slice(); b[0] = 0x58; return b; })(), /bad magic/],
    ["another version", withU32(bytes, 8, 2), /version 2/],
    ["a truncated file", bytes.subarray(0, bytes.length - 8), /shorter than its header says/],
    ["a file with more after its last section", longer, /longer than its header says/],
    ["a section that overlaps another", withU32(bytes, 44, u32(bytes, 44) - 8), /header does not match/],
    ["an odd weight width", withU32(bytes, 24, 2), /header does not match/],
    ["a link to a node that is not there", withU32(bytes, sourceAt, 6), /names no node/],
    ["a link index past 2^31", withU32(bytes, sourceAt, 0x80000000), /names no node/],
    ["links out of order", (() => { const b = bytes.slice(); new DataView(b.buffer).setFloat64(weightAt + 8 * 6, 100, true); return b; })(), /explorer's order/],
    ["a weight that is not finite", (() => { const b = bytes.slice(); new DataView(b.buffer).setFloat64(weightAt, NaN, true); return b; })(), /finite/],
    ["too few bytes for a header", bytes.subarray(0, 40), /too short/],
  ])("refuses %s", async (_name, input, message) => {
    await expect(graphFromBinary(input)).rejects.toThrow(GraphBinaryError);
    await expect(graphFromBinary(input)).rejects.toThrow(message);
  });

  it("refuses a sidecar whose nodes the explorer would not all keep (link ends would be misread)", async () => {
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
    await expect(graphFromBinary(out)).rejects.toThrow(/not the explorer's nodes/);
  });
});

describe("export of a graph read from its sidecar", () => {
  it.each(GRAPH_BINARY_VECTORS.map((v) => [v.name, v] as const))("writes what the JSON path writes, the artifact's graph (%s)", async (_name, vector) => {
    const artifact = JSON.parse(vector.json) as { metadata: unknown; nodes: unknown[]; links: { source: string; target: string; weight: number }[] };
    const graph = await graphFromBinary(bytesOf(vector));
    const fromBinary = exportGraphJson(createStore(graph).get(), await recordsOf(graph, bytesOf(vector)));
    const fromJson = buildGraph(artifact);
    expect(fromBinary).toEqual(exportGraphJson(createStore(fromJson).get(), await recordsOf(fromJson)));
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
    const fromJson = buildGraph(JSON.parse(vector.json));
    expect(plain(loaded.graph, await nodeRecords(loaded.graph))).toEqual(plain(fromJson, await recordsOf(fromJson)));
  });

  it("reads a sidecar graph's node records again from the sidecar, and says why it cannot", async () => {
    serve({ "/g.bin": () => new Response(bytesOf(vector)), "/g.json": () => new Response(vector.json) });
    const { graph } = await loadGraphFrom({ json: "/g.json", binary: "/g.bin" });
    const fetches = vi.mocked(fetch).mock.calls.length;
    expect(await nodeRecords(graph)).toEqual(JSON.parse(vector.json).nodes);
    expect(vi.mocked(fetch).mock.calls.slice(fetches).map((c) => c[0])).toEqual(["/g.bin"]);
    serve({ "/g.bin": () => new Response("", { status: 503 }) });
    await expect(nodeRecords(graph)).rejects.toThrow("HTTP 503");
    serve({ "/g.bin": () => new Response(bytesOf(GRAPH_BINARY_VECTORS[1]!)) });
    await expect(nodeRecords(graph)).rejects.toThrow(/changed since the page opened it/);
  });

  it.each([
    ["is missing (an older server)", () => new Response("", { status: 404 })],
    ["is not a sidecar", () => new Response('{"nodes": []}')],
  ])("reads the JSON when the sidecar %s", async (_name, sidecar) => {
    vi.spyOn(console, "warn").mockImplementation(() => {});
    serve({ "/g.bin": sidecar, "/g.json": () => new Response(vector.json) });
    const loaded = await loadGraphFrom({ json: "/g.json", binary: "/g.bin" });
    expect(loaded.source).toBe("json");
    const fromJson = buildGraph(JSON.parse(vector.json));
    expect(plain(loaded.graph, await nodeRecords(loaded.graph))).toEqual(plain(fromJson, await recordsOf(fromJson)));
  });

  it("hands the sidecar's document to the parsers before its links have arrived", async () => {
    const bytes = bytesOf(vector);
    const linksAt = u32(bytes, 40);
    // The body stops after the document until the parsers have it: were the links awaited
    // first, this would never finish.
    let letLinksThrough = (): void => {};
    const gate = new Promise<void>((resolve) => (letLinksThrough = resolve));
    const body = new ReadableStream<Uint8Array>({
      async start(controller) {
        controller.enqueue(bytes.slice(0, linksAt));
        await gate;
        controller.enqueue(bytes.slice(linksAt));
        controller.close();
      },
    });
    vi.stubGlobal("fetch", vi.fn(async () => new Response(body)));
    const handed: Uint8Array[] = [];
    const parsers: GraphParsers = {
      nodes: async (document) => {
        handed.push(document.slice());
        letLinksThrough();
        return thisThread.nodes(document);
      },
      json: () => Promise.reject(new Error("the JSON is not read")),
    };
    const loaded = await loadGraphFrom({ json: "/g.json", binary: "/g.bin" }, parsers);
    expect(loaded.source).toBe("binary");
    expect(JSON.parse(new TextDecoder().decode(handed[0]!)).nodes).toEqual(JSON.parse(vector.json).nodes);
    serve({ "/g.bin": () => new Response(bytes) }); // for the export's read of the records
    const fromJson = buildGraph(JSON.parse(vector.json));
    expect(plain(loaded.graph, await nodeRecords(loaded.graph))).toEqual(plain(fromJson, await recordsOf(fromJson)));
  });

  it.each([
    ["the nodes' parsing fails", bytesOf(vector)],
    ["the nodes' parsing fails and the links are cut short", bytesOf(vector).subarray(0, bytesOf(vector).length - 8)],
  ])("reads the JSON when %s", async (_name, sidecar) => {
    vi.spyOn(console, "warn").mockImplementation(() => {});
    serve({ "/g.bin": () => new Response(sidecar), "/g.json": () => new Response(vector.json) });
    const parsers: GraphParsers = { nodes: () => Promise.reject(new Error("the worker failed")), json: thisThread.json };
    const loaded = await loadGraphFrom({ json: "/g.json", binary: "/g.bin" }, parsers);
    expect(loaded.source).toBe("json");
    expect(loaded.graph.n).toBe(buildGraph(JSON.parse(vector.json)).n);
  });

  it("reads the JSON when no sidecar is offered, and says why a graph cannot be loaded", async () => {
    serve({ "/g.json": () => new Response(vector.json) });
    expect((await loadGraphFrom({ json: "/g.json" })).source).toBe("json");
    await expect(loadGraphFrom({ json: "/missing.json" })).rejects.toThrow("HTTP 404");
  });
});
