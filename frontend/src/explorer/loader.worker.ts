// The loader worker: the slow parsing of a graph, off the main thread, so the page stays
// responsive while a big graph loads (./loaderClient.ts asks, ./graphSource.ts says what): the
// nodes of a sidecar's document, or a whole graph from its JSON. Typed arrays are transferred
// back, not copied, and node records go as columns (./nodeColumns.ts).

import { GraphFormatError, type Graph } from "./graph";
import { documentNodes, type DocumentNodes } from "./graphBinary";
import { loadJsonGraph } from "./graphSource";
import { columnBuffers, packNodes, type Packed } from "./nodeColumns";

export type LoaderRequest = { id: number; nodes: Uint8Array } | { id: number; json: string };
export type LoaderReply =
  | { id: number; ok: true; nodes: Packed<DocumentNodes> }
  | { id: number; ok: true; graph: Packed<Graph>; ms: Record<string, number> }
  | { id: number; ok: false; message: string };

function transferables(packed: Packed<DocumentNodes> | Packed<Graph>): ArrayBuffer[] {
  const arrays = (Object.values(packed) as unknown[]).filter((value): value is ArrayBufferView => ArrayBuffer.isView(value));
  if ("rawNodes" in packed && "text" in packed.rawNodes) arrays.push(packed.rawNodes.text);
  // A buffer may be listed only once, whatever views of it there are.
  return [...new Set([...arrays.map((a) => a.buffer as ArrayBuffer), ...columnBuffers(packed.nodeColumns)])];
}

self.onmessage = async (event: MessageEvent<LoaderRequest>) => {
  const request = event.data;
  const post = (reply: LoaderReply, transfer: ArrayBuffer[] = []): void => (self as unknown as Worker).postMessage(reply, transfer);
  try {
    if ("nodes" in request) {
      const nodes = packNodes(documentNodes(request.nodes));
      post({ id: request.id, ok: true, nodes }, transferables(nodes));
    } else {
      const { graph, ms } = await loadJsonGraph(request.json);
      const packed = packNodes(graph);
      post({ id: request.id, ok: true, graph: packed, ms }, transferables(packed));
    }
  } catch (error) {
    const message = error instanceof GraphFormatError || error instanceof Error ? error.message : "the graph could not be loaded";
    post({ id: request.id, ok: false, message });
  }
};
