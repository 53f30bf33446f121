// Download, parse and index the graph off the main thread, so the page stays responsive while a
// big graph loads: from its binary sidecar when the server offers one, else from its JSON (see
// ./graphSource.ts). The typed arrays are transferred back, not copied.

import { GraphFormatError, type Graph } from "./graph";
import { loadGraphFrom, type GraphSourceKind, type GraphUrls } from "./graphSource";

export type LoaderRequest = GraphUrls;
export type LoaderReply =
  | { ok: true; graph: Graph; source: GraphSourceKind; fetchMs: number; buildMs: number }
  | { ok: false; message: string };

function transferables(graph: Graph): ArrayBuffer[] {
  const arrays: ArrayBufferView[] = [
    graph.kind, graph.row, graph.ctx, graph.influence, graph.edgeSrc, graph.edgeDst, graph.edgeWeight,
    graph.edgeCumBefore, graph.outStart, graph.outEdges, graph.inStart, graph.inEdges, graph.outDst, graph.inSrc, graph.inputAbsSum, graph.nodeSource,
  ];
  if ("text" in graph.rawNodes) arrays.push(graph.rawNodes.text);
  // A sidecar's arrays and text are views of one buffer: each buffer is listed once.
  return [...new Set(arrays.map((a) => a.buffer as ArrayBuffer))];
}

self.onmessage = async (event: MessageEvent<LoaderRequest>) => {
  const post = (reply: LoaderReply, transfer: ArrayBuffer[] = []): void =>
    (self as unknown as Worker).postMessage(reply, transfer);
  try {
    const { graph, source, fetchMs, buildMs } = await loadGraphFrom(event.data);
    post({ ok: true, graph, source, fetchMs, buildMs }, transferables(graph));
  } catch (error) {
    const message = error instanceof GraphFormatError || error instanceof Error ? error.message : "the graph could not be loaded";
    post({ ok: false, message });
  }
};
