// A graph (or a graph's nodes) as the loader worker hands it to the page: its node records as a
// few typed columns and one string of their ids and labels, instead of 100,000 objects and a Map
// of their ids.
// Structured-cloning those objects (worker) and rebuilding them (page) took 0.2 s of a 100k-node
// graph's opening; the columns are transferred without a copy, and the page makes the records
// again in one pass (unpackNodes), the same records graphNodes made.

import { addErrorAliases, nodeToken, type Graph, type NodeInfo } from "./graph";

export interface NodeColumns {
  feature: Float64Array; // NaN where the record's feature is null
  activation: Float64Array;
  tokenProb: Float64Array;
  // Node i's id, then its clerp, for every node in order; ends[2i] is where the id ends, ends[2i+1]
  // where the clerp ends. (Tokens are not carried: nodeToken derives them as graphWithEdges did.)
  text: string;
  ends: Int32Array;
}

/** What packing reads and unpacking makes again: a Graph or a GraphNodes. */
type NodeFields = Pick<Graph, "nodes" | "index" | "n" | "kind" | "row" | "ctx" | "influence" | "metadata">;

export type Packed<T extends NodeFields> = Omit<T, "nodes" | "index"> & { nodeColumns: NodeColumns };

/** The graph with its node records as columns (the rest as it is). */
export function packNodes<T extends NodeFields>(graph: T): Packed<T> {
  const { nodes, index: _index, ...rest } = graph;
  const n = nodes.length;
  const feature = new Float64Array(n);
  const activation = new Float64Array(n);
  const tokenProb = new Float64Array(n);
  const ends = new Int32Array(2 * n);
  const parts: string[] = new Array<string>(2 * n);
  let at = 0;
  for (let i = 0; i < n; i++) {
    const node = nodes[i]!;
    feature[i] = node.feature ?? Number.NaN;
    activation[i] = node.activation;
    tokenProb[i] = node.tokenProb;
    parts[2 * i] = node.id;
    parts[2 * i + 1] = node.clerp;
    at += node.id.length;
    ends[2 * i] = at;
    at += node.clerp.length;
    ends[2 * i + 1] = at;
  }
  return { ...rest, nodeColumns: { feature, activation, tokenProb, text: parts.join(""), ends } };
}

/** The graph packNodes packed: the same node records and id index. */
export function unpackNodes<T extends NodeFields>(packed: Packed<T>): T {
  const { nodeColumns: columns, ...rest } = packed;
  const { feature, activation, tokenProb, text, ends } = columns;
  const tokens = packed.metadata.promptTokens;
  const nodes: NodeInfo[] = new Array<NodeInfo>(packed.n);
  const index = new Map<string, number>();
  let at = 0;
  for (let i = 0; i < packed.n; i++) {
    const id = text.slice(at, ends[2 * i]!);
    const clerp = text.slice(ends[2 * i]!, ends[2 * i + 1]!);
    at = ends[2 * i + 1]!;
    const kind = packed.kind[i]! as NodeInfo["kind"];
    const ctx = packed.ctx[i]!;
    const f = feature[i]!;
    // The same fields in the same order as parseNode's records (one object shape for the engine).
    nodes[i] = {
      id,
      kind,
      layer: packed.row[i]! - 1,
      ctx,
      feature: Number.isNaN(f) ? null : f,
      clerp,
      token: nodeToken(kind, clerp, tokens, ctx),
      influence: packed.influence[i]!,
      activation: activation[i]!,
      tokenProb: tokenProb[i]!,
    };
    index.set(id, i);
  }
  addErrorAliases(nodes, index);
  // T less its nodes and index, with them again: T (which TypeScript cannot see for a generic T).
  return { ...rest, nodes, index } as unknown as T;
}

/** The buffers of the columns, to transfer rather than copy. */
export function columnBuffers(columns: NodeColumns): ArrayBuffer[] {
  return [columns.feature, columns.activation, columns.tokenProb, columns.ends].map((a) => a.buffer as ArrayBuffer);
}
