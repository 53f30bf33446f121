// Where the page's graph comes from: the server's binary sidecar when it offers one (a stored
// graph's links, already indexed: ./graphBinary.ts), else the graph's JSON (uploaded files,
// other hosts, an older server, or a sidecar this page cannot read). Used by the loader worker
// and, without a worker, by the page itself.

import { graphFromSidecar, readSidecar, sidecarRecords } from "./graphBinary";
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
  fetchMs: number;
  buildMs: number;
}

export class GraphHttpError extends Error {}

const SIDECAR = "application/octet-stream";

async function fetchBody(url: string, accept: string): Promise<ReadableStream<Uint8Array>> {
  const response = await fetch(url, { headers: { Accept: accept }, credentials: "same-origin" });
  if (!response.ok) throw new GraphHttpError(`the graph could not be loaded (HTTP ${response.status})`);
  // Only a 204 or a HEAD answer has no body: read it as empty.
  return response.body ?? new Blob([]).stream();
}

async function timed<T>(
  source: GraphSourceKind,
  url: string,
  accept: string,
  download: (body: ReadableStream<Uint8Array>) => Promise<T>,
  build: (downloaded: T, url: string) => Graph,
): Promise<LoadedGraph> {
  const t0 = performance.now();
  const downloaded = await download(await fetchBody(url, accept));
  const t1 = performance.now();
  const graph = build(downloaded, url);
  return { graph, source, fetchMs: t1 - t0, buildMs: performance.now() - t1 };
}

const bytesOf = async (body: ReadableStream<Uint8Array>): Promise<Uint8Array> => new Uint8Array(await new Response(body).arrayBuffer());

/** The graph, from its sidecar if that works, else from its JSON. */
export async function loadGraphFrom(urls: GraphUrls): Promise<LoadedGraph> {
  if (urls.binary) {
    try {
      return await timed("binary", urls.binary, SIDECAR, readSidecar, graphFromSidecar);
    } catch (error) {
      // The JSON is the graph's own format: whatever went wrong with its sidecar, read that.
      console.warn("graph sidecar not used:", error instanceof Error ? error.message : error);
    }
  }
  return timed("json", urls.json, "application/json", bytesOf, graphFromBytes);
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
