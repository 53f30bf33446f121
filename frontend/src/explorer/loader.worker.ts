// Download, parse and index the graph off the main thread: the 100k+ link objects JSON.parse
// makes are garbage collected here, not in the page's heap, and the page stays responsive while
// a big graph loads. The typed arrays are transferred back, not copied.

import { buildGraph, GraphFormatError, type Graph } from "./graph";

export type LoaderRequest = { url: string };
export type LoaderReply =
  | { ok: true; graph: Graph; fetchParseMs: number; buildMs: number }
  | { ok: false; message: string };

function transferables(graph: Graph): ArrayBuffer[] {
  const arrays = [
    graph.kind, graph.row, graph.ctx, graph.influence, graph.edgeSrc, graph.edgeDst, graph.edgeWeight,
    graph.edgeCumBefore, graph.outStart, graph.outEdges, graph.inStart, graph.inEdges, graph.inputAbsSum,
  ];
  return arrays.map((a) => a.buffer as ArrayBuffer);
}

self.onmessage = async (event: MessageEvent<LoaderRequest>) => {
  const post = (reply: LoaderReply, transfer: ArrayBuffer[] = []): void =>
    (self as unknown as Worker).postMessage(reply, transfer);
  try {
    const t0 = performance.now();
    const response = await fetch(event.data.url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    if (!response.ok) throw new Error(`the graph could not be loaded (HTTP ${response.status})`);
    const json: unknown = await response.json();
    const t1 = performance.now();
    const graph = buildGraph(json);
    const t2 = performance.now();
    post({ ok: true, graph, fetchParseMs: t1 - t0, buildMs: t2 - t1 }, transferables(graph));
  } catch (error) {
    const message = error instanceof GraphFormatError || error instanceof Error ? error.message : "the graph could not be loaded";
    post({ ok: false, message });
  }
};
