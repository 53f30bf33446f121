// Download, parse and index the graph off the main thread, so the page stays responsive while a
// big graph loads: from its binary sidecar when the server offers one, else from its JSON (see
// ./graphSource.ts). The typed arrays are transferred back, not copied, and the node records go
// as columns (./nodeColumns.ts).

import { GraphFormatError } from "./graph";
import { loadGraphFrom, type GraphSourceKind, type GraphUrls } from "./graphSource";
import { columnBuffers, packGraph, type PackedGraph } from "./nodeColumns";

export type LoaderRequest = GraphUrls;
export type LoaderReply =
  | { ok: true; graph: PackedGraph; source: GraphSourceKind; fetchMs: number; buildMs: number }
  | { ok: false; message: string };

function transferables(graph: PackedGraph): ArrayBuffer[] {
  const arrays: ArrayBufferView[] = [
    graph.kind, graph.row, graph.ctx, graph.influence, graph.edgeSrc, graph.edgeDst, graph.edgeWeight,
    graph.edgeAbsBefore, graph.outStart, graph.outEdges, graph.inStart, graph.inEdges, graph.outDst, graph.inSrc, graph.inputAbsSum, graph.nodeSource,
  ];
  if ("text" in graph.rawNodes) arrays.push(graph.rawNodes.text);
  // A buffer may be listed only once, whatever views of it there are.
  return [...new Set([...arrays.map((a) => a.buffer as ArrayBuffer), ...columnBuffers(graph.nodeColumns)])];
}

self.onmessage = async (event: MessageEvent<LoaderRequest>) => {
  const post = (reply: LoaderReply, transfer: ArrayBuffer[] = []): void =>
    (self as unknown as Worker).postMessage(reply, transfer);
  try {
    const { graph, source, fetchMs, buildMs } = await loadGraphFrom(event.data);
    const packed = packGraph(graph);
    post({ ok: true, graph: packed, source, fetchMs, buildMs }, transferables(packed));
  } catch (error) {
    const message = error instanceof GraphFormatError || error instanceof Error ? error.message : "the graph could not be loaded";
    post({ ok: false, message });
  }
};
