// Where the page's graph comes from: the server's binary sidecar when it offers one (a stored
// graph's links, already indexed: ./graphBinary.ts), else the graph's JSON (uploaded files,
// other hosts, an older server, or a sidecar this page cannot read).
//
// The sidecar is read by the page itself, its links straight into the arrays the page keeps,
// while the loader worker parses its document (the node records) at the same time. The links'
// arrays are made by the page, not sent from the worker, so that leaving the page frees them at
// once (./release.ts): an array that came from a worker is freed only when V8 next collects.
// Where the parsing happens is the caller's choice (GraphParsers: the worker's, or this thread's).

import { documentNodes, openSidecar, sidecarEdges, sidecarGraph, sidecarRecords, type DocumentNodes } from "./graphBinary";
import { heldRecords, type Graph } from "./graph";
import { graphFromBytes } from "./linkScan";

export interface GraphUrls {
  json: string;
  binary?: string; // the sidecar; absent when the server offers none
}

export type GraphSourceKind = "binary" | "json";

export interface LoadedGraph {
  graph: Graph;
  source: GraphSourceKind;
  ms: Record<string, number>; // where the time went: fetch, build, ...
}

/** The two slow parts of loading, wherever they run. */
export interface GraphParsers {
  /** The nodes of a sidecar's document (the bytes may be taken: transferred to a worker). */
  nodes(document: Uint8Array): Promise<DocumentNodes>;
  /** The graph from its JSON file at `url`. */
  json(url: string): Promise<LoadedGraph>;
}

export class GraphHttpError extends Error {}

const SIDECAR = "application/octet-stream";

async function fetchBody(url: string, accept: string): Promise<ReadableStream<Uint8Array>> {
  const response = await fetch(url, { headers: { Accept: accept }, credentials: "same-origin" });
  if (!response.ok) throw new GraphHttpError(`the graph could not be loaded (HTTP ${response.status})`);
  // Only a 204 or a HEAD answer has no body: read it as empty.
  return response.body ?? new Blob([]).stream();
}

/** The graph from its JSON file, in this thread. */
export async function loadJsonGraph(url: string): Promise<LoadedGraph> {
  const t0 = performance.now();
  const bytes = new Uint8Array(await new Response(await fetchBody(url, "application/json")).arrayBuffer());
  const t1 = performance.now();
  const graph = graphFromBytes(bytes);
  return { graph, source: "json", ms: { fetch: t1 - t0, build: performance.now() - t1 } };
}

/** Parsing in this thread (no worker: a policy blocks it, or it failed). */
export const thisThread: GraphParsers = {
  nodes: async (document) => documentNodes(document),
  json: loadJsonGraph,
};

/** The graph from its sidecar at `url`: the document goes to `parsers` as soon as it has arrived;
 * the links are read and indexed meanwhile. */
async function loadSidecarGraph(url: string, parsers: GraphParsers): Promise<LoadedGraph> {
  const t0 = performance.now();
  const open = await openSidecar(await fetchBody(url, SIDECAR));
  const nodes = parsers.nodes(open.document);
  // Settled here if the links fail first, so that its own failure is not left unhandled.
  nodes.catch(() => {});
  const links = await open.links();
  const t1 = performance.now();
  const edges = sidecarEdges(links, open.header.records);
  const t2 = performance.now();
  const graph = sidecarGraph(open.header, await nodes, edges, url);
  // fetch: the whole download; links: indexing them; nodes: the wait for the document's nodes after that.
  return { graph, source: "binary", ms: { fetch: t1 - t0, links: t2 - t1, nodes: performance.now() - t2 } };
}

/** The graph, from its sidecar if that works, else from its JSON. */
export async function loadGraphFrom(urls: GraphUrls, parsers: GraphParsers = thisThread): Promise<LoadedGraph> {
  if (urls.binary) {
    try {
      return await loadSidecarGraph(urls.binary, parsers);
    } catch (error) {
      // The JSON is the graph's own format: whatever went wrong with its sidecar, read that.
      console.warn("graph sidecar not used:", error instanceof Error ? error.message : error);
    }
  }
  return parsers.json(urls.json);
}

/** The file's node records, as they were (export writes them): held by the page, or read again
 * from the sidecar the graph came from. */
export async function nodeRecords(graph: Graph): Promise<unknown[]> {
  const source = graph.rawNodes;
  const held = heldRecords(source);
  if (held) return held;
  if (!("sidecar" in source)) throw new Error("the graph's node records are not known");
  return sidecarRecords(await fetchBody(source.sidecar, SIDECAR), source.artifactSha256);
}
