// A small hand-made graph for unit tests: 2 layers, prompt "The cat", one logit; and a graph read
// from a whole sidecar in this thread, as the page reads one (./graphSource.ts) without a worker.

import type { Graph } from "./graph";
import { documentNodes, openSidecar, sidecarEdges, sidecarGraph } from "./graphBinary";

/** The graph of the sidecar streamed by `body`, as if read from `url`. */
export async function graphFromSidecarBody(body: ReadableStream<Uint8Array>, url = "/g.bin"): Promise<Graph> {
  const open = await openSidecar(body);
  const links = await open.links();
  return sidecarGraph(open.header, documentNodes(open.document), sidecarEdges(links, open.header.records), url);
}

export function tinyGraphJson(): Record<string, unknown> {
  return {
    metadata: { slug: "tiny", scan: "toy-model", prompt: "The cat", prompt_tokens: ["The", " cat"] },
    qParams: { pinnedIds: [], supernodes: [], linkType: "both", clickedId: "" },
    nodes: [
      { node_id: "E_10_0", feature: null, layer: "E", ctx_idx: 0, feature_type: "embedding", jsNodeId: "E_10-0", clerp: "" },
      { node_id: "E_11_1", feature: null, layer: "E", ctx_idx: 1, feature_type: "embedding", jsNodeId: "E_11-1", clerp: "" },
      { node_id: "0_5_0", feature: 5, layer: "0", ctx_idx: 0, feature_type: "cross layer transcoder", jsNodeId: "0_5-0", clerp: "the article", influence: 0.3, activation: 2.5 },
      { node_id: "0_7_1", feature: 7, layer: "0", ctx_idx: 1, feature_type: "cross layer transcoder", jsNodeId: "0_7-1", clerp: "cats and felines", influence: 0.1, activation: 4 },
      { node_id: "1_3_1", feature: 3, layer: "1", ctx_idx: 1, feature_type: "cross layer transcoder", jsNodeId: "1_3-1", clerp: "say animal", influence: 0.6, activation: 1.5 },
      { node_id: "1_-1_1", feature: null, layer: "1", ctx_idx: 1, feature_type: "mlp reconstruction error", jsNodeId: "1_-1-1", clerp: "", influence: 0.9 },
      { node_id: "3_42_1", feature: 42, layer: "3", ctx_idx: 1, feature_type: "logit", jsNodeId: "3_42-1", clerp: 'Output " sat" (p=0.612)', token_prob: 0.612, is_target_logit: true },
    ],
    links: [
      { source: "E_10_0", target: "0_5_0", weight: 3 },
      { source: "E_11_1", target: "0_7_1", weight: 5 },
      { source: "0_5_0", target: "1_3_1", weight: -1 },
      { source: "0_7_1", target: "1_3_1", weight: 2 },
      { source: "0_1_1", target: "3_42_1", weight: 0.5 }, // old error-id form
      { source: "1_3_1", target: "3_42_1", weight: 4 },
      { source: "0_7_1", target: "3_42_1", weight: 1.5 },
      { source: "nope", target: "3_42_1", weight: 1 }, // unknown source: dropped
      { source: "E_10_0", target: "0_5_0", weight: "NaN" }, // bad weight: dropped
    ],
  };
}
