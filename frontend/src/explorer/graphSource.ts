// Where the page's graph comes from: the server's binary sidecar when it offers one (a stored
// graph's links, already indexed: ./graphBinary.ts), else the graph's JSON (uploaded files,
// other hosts, an older server, or a sidecar this page cannot read). Used by the loader worker
// and, without a worker, by the page itself.

import { graphFromBinary } from "./graphBinary";
import type { Graph } from "./graph";
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

async function fetchBytes(url: string, accept: string): Promise<Uint8Array> {
  const response = await fetch(url, { headers: { Accept: accept }, credentials: "same-origin" });
  if (!response.ok) throw new GraphHttpError(`the graph could not be loaded (HTTP ${response.status})`);
  return new Uint8Array(await response.arrayBuffer());
}

async function timed(source: GraphSourceKind, url: string, accept: string, read: (bytes: Uint8Array) => Graph): Promise<LoadedGraph> {
  const t0 = performance.now();
  const bytes = await fetchBytes(url, accept);
  const t1 = performance.now();
  const graph = read(bytes);
  return { graph, source, fetchMs: t1 - t0, buildMs: performance.now() - t1 };
}

/** The graph, from its sidecar if that works, else from its JSON. */
export async function loadGraphFrom(urls: GraphUrls): Promise<LoadedGraph> {
  if (urls.binary) {
    try {
      return await timed("binary", urls.binary, "application/octet-stream", graphFromBinary);
    } catch (error) {
      // The JSON is the graph's own format: whatever went wrong with its sidecar, read that.
      console.warn("graph sidecar not used:", error instanceof Error ? error.message : error);
    }
  }
  return timed("json", urls.json, "application/json", graphFromBytes);
}
