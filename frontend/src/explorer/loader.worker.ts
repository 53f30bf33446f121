// Download, parse and index the graph off the main thread, so the page stays responsive while a
// big graph loads. The file is read as bytes and its links scanned straight into typed arrays
// (./linkScan.ts); the typed arrays are transferred back, not copied.

import { GraphFormatError, type Graph } from "./graph";
import { graphFromBytes } from "./linkScan";

export type LoaderRequest = { url: string };
export type LoaderReply =
  | { ok: true; graph: Graph; fetchMs: number; buildMs: number }
  | { ok: false; message: string };

function transferables(graph: Graph): ArrayBuffer[] {
  const arrays: ArrayBufferView[] = [
    graph.kind, graph.row, graph.ctx, graph.influence, graph.edgeSrc, graph.edgeDst, graph.edgeWeight,
    graph.edgeCumBefore, graph.outStart, graph.outEdges, graph.inStart, graph.inEdges, graph.outDst, graph.inSrc, graph.inputAbsSum, graph.nodeSource,
  ];
  if ("text" in graph.rawNodes) arrays.push(graph.rawNodes.text);
  return arrays.map((a) => a.buffer as ArrayBuffer);
}

self.onmessage = async (event: MessageEvent<LoaderRequest>) => {
  const post = (reply: LoaderReply, transfer: ArrayBuffer[] = []): void =>
    (self as unknown as Worker).postMessage(reply, transfer);
  try {
    const t0 = performance.now();
    const response = await fetch(event.data.url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    if (!response.ok) throw new Error(`the graph could not be loaded (HTTP ${response.status})`);
    const bytes = new Uint8Array(await response.arrayBuffer());
    const t1 = performance.now();
    const graph = graphFromBytes(bytes);
    const t2 = performance.now();
    post({ ok: true, graph, fetchMs: t1 - t0, buildMs: t2 - t1 }, transferables(graph));
  } catch (error) {
    const message = error instanceof GraphFormatError || error instanceof Error ? error.message : "the graph could not be loaded";
    post({ ok: false, message });
  }
};
