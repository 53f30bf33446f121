// The attribution graph in the form the explorer draws from: node records plus typed arrays.
//
// Input is the circuit-tracer / Neuronpedia graph JSON (schema v1: metadata, qParams, nodes,
// links). Everything is validated here, once: a node or link that does not make sense is dropped
// (and counted), never allowed to break the page later. Adjacency is built once into CSR arrays
// whose segments are already sorted by |weight| descending, so "top inputs of node i" is a slice.
// The node-id grammar and the Cantor pairing are the contract's (contract/node_ids.py); the
// functions here that implement them are run over its test vectors (contract.test.ts).

import { EMBEDDING_TYPE, LOGIT_TYPE, SCHEMA_VERSION } from "../contract.gen";

export const Kind = { Embedding: 0, Feature: 1, Error: 2, Logit: 3 } as const;
export type Kind = (typeof Kind)[keyof typeof Kind];

export interface NodeInfo {
  id: string; // node_id as in the JSON; the id pins, labels and URLs use
  kind: Kind;
  layer: number; // transcoder layer; -1 for embeddings, nLayers for logits
  ctx: number; // prompt position
  feature: number | null; // transcoder feature index (features only)
  clerp: string; // label from the file (logits: 'Output " x" (p=0.4)')
  token: string; // prompt token at ctx, or the logit's output token
  influence: number; // cumulative influence (NaN when absent)
  activation: number; // NaN when absent
  tokenProb: number; // logits only, NaN otherwise
}

export interface GraphMetadata {
  slug: string;
  scan: string;
  prompt: string;
  promptTokens: string[];
  transcoderSet: string;
  nodeThreshold: number | null;
  // The graph's own pruning_settings.edge_threshold (its tool's choice): the initial edge slider.
  edgeThreshold: number | null;
  raw: Record<string, unknown>;
}

export interface Graph {
  metadata: GraphMetadata;
  qParams: Record<string, unknown>;
  nodes: NodeInfo[];
  // The file's node records as they were, for a faithful export (see RawNodes); nodeSource[i] is
  // the element of the file's `nodes` node i came from.
  rawNodes: RawNodes;
  nodeSource: Int32Array;
  index: Map<string, number>; // node id -> node index (also the old error-id form)
  n: number;
  kind: Uint8Array;
  row: Int16Array; // 0 = embeddings, layer + 1 for features/errors, nLayers + 1 for logits
  ctx: Int32Array;
  influence: Float64Array;
  nLayers: number; // transcoder layers seen (max feature/error layer + 1)
  nCtx: number;
  // Edges in one global order: by |weight| descending.
  nEdges: number;
  edgeSrc: Int32Array;
  edgeDst: Int32Array;
  edgeWeight: Float64Array | Float32Array; // float32 when the sidecar's are (every one exact)
  // For the edge threshold (share of the total |weight| held by the edges before an edge; see
  // prune.ts edgePrefix): the running |weight| sum before every EDGE_MARK-th edge, and the total.
  edgeAbsBefore: Float64Array;
  edgeAbsTotal: number;
  // CSR: out edges of i are outEdges[outStart[i] .. outStart[i+1]), sorted by |weight| desc.
  outStart: Int32Array;
  outEdges: Int32Array;
  inStart: Int32Array;
  inEdges: Int32Array;
  // The other end of each CSR entry (outDst[j] = edgeDst[outEdges[j]]), so walking a node's
  // neighbours reads one array in order instead of jumping around edgeDst / edgeSrc.
  outDst: Int32Array;
  inSrc: Int32Array;
  inputAbsSum: Float64Array; // per target: sum of |weight| of its inputs
  partial: boolean; // links were left out of the file: they come per node, on demand
  linksTotal: number; // links in the whole graph (more than nEdges while partial)
  dropped: { nodes: number; links: number };
}

/**
 * The file's node records, for a faithful export: parsed; or the text of the document without
 * its links (a graph read from its JSON in a worker: 100k records would cost the page more to
 * receive than their text costs to parse when an export asks for them); or, for a graph read
 * from its sidecar, where to read them again (the sidecar at that address, made from the artifact
 * with that SHA-256: see ./graphBinary.ts).
 */
export type RawNodes = { records: unknown[] } | { text: Uint8Array } | { sidecar: string; artifactSha256: string };

const parsedRecords = new WeakMap<Uint8Array, unknown[]>();

/** The file's node records when the page holds them (parsed from their text the first time);
 * null for a sidecar's, which ./graphSource.ts nodeRecords reads again. */
export function heldRecords(source: RawNodes): unknown[] | null {
  if ("records" in source) return source.records;
  if (!("text" in source)) return null;
  let records = parsedRecords.get(source.text);
  if (!records) {
    records = (JSON.parse(new TextDecoder().decode(source.text)) as { nodes: unknown[] }).nodes;
    parsedRecords.set(source.text, records);
  }
  return records;
}

export type EdgeFields = Pick<
  Graph,
  "nEdges" | "edgeSrc" | "edgeDst" | "edgeWeight" | "edgeAbsBefore" | "edgeAbsTotal" | "outStart" | "outEdges" | "inStart" | "inEdges" | "outDst" | "inSrc" | "inputAbsSum"
>;

export class GraphFormatError extends Error {}

/** Edges between two marks of Graph.edgeAbsBefore. */
export const EDGE_MARK = 64;

const MAX_LABEL = 500;
const MAX_POSITIONS = 4096; // or the prompt's length, when longer
const MAX_LAYERS = 1000;

function asRecord(value: unknown): Record<string, unknown> | null {
  return typeof value === "object" && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : null;
}

function str(value: unknown, fallback = ""): string {
  if (typeof value === "string") return value.slice(0, MAX_LABEL);
  if (typeof value === "number" && Number.isFinite(value)) return String(value);
  return fallback;
}

function num(value: unknown): number {
  if (typeof value === "number") return Number.isFinite(value) ? value : NaN;
  if (typeof value === "string" && value.trim() !== "") {
    const parsed = Number(value);
    return Number.isFinite(parsed) ? parsed : NaN;
  }
  return NaN;
}

export function kindOf(featureType: string, id: string): Kind {
  const type = featureType.toLowerCase();
  if (type === EMBEDDING_TYPE || id.startsWith("E_")) return Kind.Embedding;
  if (type === LOGIT_TYPE) return Kind.Logit;
  if (type.includes("error")) return Kind.Error;
  return Kind.Feature;
}

/** The output token of a logit node, from its clerp ('Output " floor" (p=0.111)'). */
export function logitToken(clerp: string): string {
  const quoted = /"(.*)"/s.exec(clerp);
  if (quoted?.[1] !== undefined) return quoted[1];
  const single = /'(.*)'/s.exec(clerp);
  return single?.[1] ?? clerp;
}

export interface NodeIdParts {
  layer: number | null; // transcoder layer; nLayers + 1 for a logit; null for a token
  number: number; // feature index, token id or vocab id; -1 for an error
  pos: number;
}

const TRIPLE_ID = /^(\d{1,10})_(-1|\d{1,10})_(\d{1,10})$/;
const TOKEN_ID = /^E_(\d{1,10})_(\d{1,10})$/;

/** The parts of `id` read as a `kind` node; null when it does not fit (an old error id parses to its layer). */
export function parseNodeId(id: string, kind: Kind): NodeIdParts | null {
  if (kind === Kind.Embedding) {
    const token = TOKEN_ID.exec(id);
    return token ? { layer: null, number: Number(token[1]), pos: Number(token[2]) } : null;
  }
  const match = TRIPLE_ID.exec(id);
  if (!match) return null;
  const [first, middle, pos] = [Number(match[1]), Number(match[2]), Number(match[3])];
  if (kind === Kind.Error) {
    if (middle === -1) return { layer: first, number: -1, pos };
    return first === 0 ? { layer: middle, number: -1, pos } : null;
  }
  return middle >= 0 ? { layer: first, number: middle, pos } : null;
}

/** Adds to `index` (node id -> node index) the other spelling of each error node's id, so links,
 * pins and URLs may use either; an id some node already has keeps its node. */
export function addErrorAliases(nodes: readonly NodeInfo[], index: Map<string, number>): void {
  for (const [i, node] of nodes.entries()) {
    if (node.kind !== Kind.Error) continue;
    for (const alias of errorIdAliases(node.layer, node.ctx)) if (!index.has(alias)) index.set(alias, i);
  }
}

/** The other spelling of an error node id: `{layer}_-1_{pos}` <-> old `0_{layer}_{pos}`. */
export function errorIdAliases(layer: number, ctx: number): string[] {
  return [`${layer}_-1_${ctx}`, `0_${layer}_${ctx}`];
}

function parseMetadata(value: unknown): GraphMetadata {
  const meta = asRecord(value) ?? {};
  const tokens = Array.isArray(meta["prompt_tokens"])
    ? (meta["prompt_tokens"] as unknown[]).slice(0, 16_384).map((t) => str(t))
    : [];
  const details = asRecord(meta["feature_details"]) ?? {};
  const pruning = asRecord(meta["pruning_settings"]) ?? {};
  const threshold = num(pruning["node_threshold"] ?? meta["node_threshold"]);
  const edge = num(pruning["edge_threshold"]);
  return {
    slug: str(meta["slug"]),
    scan: str(meta["scan"]),
    prompt: str(meta["prompt"]),
    promptTokens: tokens,
    transcoderSet: str(details["neuronpedia_source_set"] ?? meta["transcoder_set"]),
    nodeThreshold: Number.isFinite(threshold) && threshold >= 0 && threshold <= 1 ? threshold : null,
    edgeThreshold: Number.isFinite(edge) && edge >= 0 && edge <= 1 ? edge : null,
    raw: meta,
  };
}

/** A node's token: a logit's output token (from its clerp), else the prompt's token at its position. */
export function nodeToken(kind: Kind, clerp: string, promptTokens: readonly string[], ctx: number): string {
  return kind === Kind.Logit ? logitToken(clerp) : (promptTokens[ctx] ?? "");
}

interface RawNodeResult {
  info: NodeInfo;
  layerKnown: boolean;
}

/** Inverse of the Cantor pairing schema v1 uses for `feature`: cantor(layer, index) -> index. */
export function cantorIndex(value: number): number {
  const w = Math.floor((Math.sqrt(8 * value + 1) - 1) / 2);
  return value - (w * w + w) / 2;
}

/**
 * A feature's transcoder index. The id `{layer}_{index}_{pos}` says it plainly; otherwise schema
 * v1 files store cantor(layer, index) in `feature`, and older ones the index itself.
 */
export function featureIndex(id: string, layer: number, feature: number, cantor: boolean): number {
  const parts = parseNodeId(id, Kind.Feature);
  if (parts && parts.layer === layer) return parts.number;
  if (!Number.isInteger(feature) || feature < 0) return NaN;
  return cantor ? cantorIndex(feature) : feature;
}

function parseNode(value: unknown, tokens: string[], cantorFeatures: boolean): RawNodeResult | null {
  const raw = asRecord(value);
  if (!raw) return null;
  const id = str(raw["node_id"]);
  if (!id || id.length > 200) return null;
  const kind = kindOf(str(raw["feature_type"]), id);
  const ctx = num(raw["ctx_idx"]);
  // Bounds keep the layout's (layer x position) grid small whatever a file claims.
  if (!Number.isInteger(ctx) || ctx < 0 || ctx >= Math.max(tokens.length, MAX_POSITIONS)) return null;
  let layer = num(raw["layer"]);
  if (kind === Kind.Error && !Number.isFinite(layer)) layer = parseNodeId(id, Kind.Error)?.layer ?? NaN;
  const layerKnown = Number.isInteger(layer) && layer >= 0 && layer < MAX_LAYERS;
  if (!layerKnown && kind !== Kind.Embedding && kind !== Kind.Logit) return null;
  const clerp = str(raw["clerp"]);
  const feature = kind === Kind.Feature ? featureIndex(id, layer, num(raw["feature"]), cantorFeatures) : NaN;
  const token = nodeToken(kind, clerp, tokens, ctx);
  return {
    layerKnown,
    info: {
      id,
      kind,
      layer: layerKnown ? layer : -1,
      ctx,
      feature: kind === Kind.Feature && Number.isFinite(feature) ? feature : null,
      clerp,
      token,
      influence: num(raw["influence"]),
      activation: num(raw["activation"]),
      tokenProb: kind === Kind.Logit ? num(raw["token_prob"] ?? /p=([0-9.eE+-]+)/.exec(clerp)?.[1]) : NaN,
    },
  };
}

/** The links of a file before indexing: node indices (-1 when unknown) and weights (NaN when unusable). */
export interface RawLinks {
  count: number; // links in the file, usable or not
  src: Int32Array;
  dst: Int32Array;
  weight: Float64Array;
}

/** RawLinks from parsed link objects, read as buildGraph always has. */
export function linksFromObjects(index: Map<string, number>, rawLinks: unknown[]): RawLinks {
  const count = rawLinks.length;
  const src = new Int32Array(count).fill(-1);
  const dst = new Int32Array(count).fill(-1);
  const weight = new Float64Array(count).fill(NaN);
  for (let k = 0; k < count; k++) {
    const link = asRecord(rawLinks[k]);
    if (!link) continue;
    src[k] = index.get(link["source"] as string) ?? -1;
    dst[k] = index.get(link["target"] as string) ?? -1;
    const w = link["weight"];
    if (typeof w === "number") weight[k] = w;
  }
  return { count, src, dst, weight };
}

/**
 * Parse and index a graph JSON object. Throws GraphFormatError only when nothing is usable.
 * `links` reads the links another way (see ./linkScan.ts): then `json.links` is not looked at
 * beyond being an array.
 */
export function buildGraph(json: unknown, links?: (index: Map<string, number>) => RawLinks): Graph {
  return graphWithEdges(json, (index, n) => {
    const listed = asRecord(json)?.["links"];
    const raw = links ? links(index) : linksFromObjects(index, Array.isArray(listed) ? (listed as unknown[]) : []);
    return { edges: indexEdges(n, raw), count: raw.count };
  });
}

/**
 * The edges of a graph whose nodes are read: from their node indices (`index`, `n` nodes kept of
 * the file's `records`), the indexed edges and how many links the source had, usable or not.
 */
export type EdgesOf = (index: Map<string, number>, n: number, records: number) => { edges: EdgeFields; count: number };

/** A graph's nodes as read from its document: all of Graph but its edges, with what the edges'
 * reader needs (`records`: the file's node records, kept or not) and what Graph says of its links. */
export type GraphNodes = Omit<Graph, keyof EdgeFields | "partial" | "linksTotal" | "dropped"> & {
  records: number;
  linksListed: boolean; // the document has a links array (else its links come on demand)
  linksTotal: number; // what a skeleton says the whole graph has (0 when it says nothing)
  droppedNodes: number;
};

/** The nodes of a graph JSON object (links are read apart: see graphWithEdges). */
export function graphNodes(json: unknown): GraphNodes {
  const root = asRecord(json);
  // `links` may be left out: a graph too large to ship whole comes as nodes only, and the page
  // loads the links of the nodes in focus from the neighbourhood API (see ./neighbourhood.ts).
  if (!root || !Array.isArray(root["nodes"]) || (root["links"] !== undefined && !Array.isArray(root["links"]))) {
    throw new GraphFormatError("not an attribution graph: expected an object with nodes and links");
  }
  const metadata = parseMetadata(root["metadata"]);
  const cantorFeatures = metadata.raw["schema_version"] === SCHEMA_VERSION;
  const rawNodes = root["nodes"] as unknown[];

  const nodes: NodeInfo[] = [];
  const nodeSource = new Int32Array(rawNodes.length);
  const index = new Map<string, number>();
  let droppedNodes = 0;
  let maxLayer = -1;
  for (let k = 0; k < rawNodes.length; k++) {
    const parsed = parseNode(rawNodes[k], metadata.promptTokens, cantorFeatures);
    if (!parsed || index.has(parsed.info.id)) {
      droppedNodes++;
      continue;
    }
    const { info } = parsed;
    if (info.kind === Kind.Feature || info.kind === Kind.Error) maxLayer = Math.max(maxLayer, info.layer);
    index.set(info.id, nodes.length);
    nodeSource[nodes.length] = k;
    nodes.push(info);
  }
  if (nodes.length === 0) throw new GraphFormatError("the graph has no usable nodes");
  addErrorAliases(nodes, index);

  const n = nodes.length;
  const nLayers = maxLayer + 1;
  const kind = new Uint8Array(n);
  const row = new Int16Array(n);
  const ctx = new Int32Array(n);
  const influence = new Float64Array(n);
  let nCtx = metadata.promptTokens.length;
  for (let i = 0; i < n; i++) {
    const node = nodes[i]!;
    kind[i] = node.kind;
    if (node.kind === Kind.Embedding) node.layer = -1;
    if (node.kind === Kind.Logit) node.layer = nLayers;
    row[i] = node.layer + 1;
    ctx[i] = node.ctx;
    influence[i] = node.influence;
    nCtx = Math.max(nCtx, node.ctx + 1);
  }
  // A skeleton (artifact ?links=none or ?max_links=N) says how many links the whole graph has.
  const total = root["links_total"];
  return {
    metadata,
    qParams: asRecord(root["qParams"]) ?? {},
    nodes,
    rawNodes: { records: rawNodes },
    nodeSource: nodeSource.slice(0, nodes.length),
    index,
    n,
    kind,
    row,
    ctx,
    influence,
    nLayers,
    nCtx,
    records: rawNodes.length,
    linksListed: Array.isArray(root["links"]),
    linksTotal: typeof total === "number" && Number.isInteger(total) && total >= 0 ? total : 0,
    droppedNodes,
  };
}

/** The graph of these nodes and edges; `count`: the links the source had, usable or not. */
export function withEdges(graphNodes: GraphNodes, edges: EdgeFields, count: number): Graph {
  const { records: _records, linksListed, linksTotal, droppedNodes, ...nodes } = graphNodes;
  return {
    ...nodes,
    ...edges,
    partial: !linksListed || linksTotal > edges.nEdges,
    linksTotal: Math.max(linksTotal, edges.nEdges),
    dropped: { nodes: droppedNodes, links: count - edges.nEdges },
  };
}

/** buildGraph with the edges from `edgesOf` (a binary sidecar gives them already indexed). */
export function graphWithEdges(json: unknown, edgesOf: EdgesOf): Graph {
  const nodes = graphNodes(json);
  const { edges, count } = edgesOf(nodes.index, nodes.n, nodes.records);
  return withEdges(nodes, edges, count);
}

/**
 * Indices of `values` (all >= 0) from largest to smallest: an LSD radix sort on the float32 bit
 * patterns (which order like the numbers for non-negative floats), two 16-bit passes. About 20x
 * faster than a comparator sort on 200k edges; ties keep input order.
 */
export function orderByDescending(values: Float64Array): Int32Array {
  const n = values.length;
  const keys = new Uint32Array(new Float32Array(values).buffer);
  for (let i = 0; i < n; i++) keys[i] = 0xffffffff - keys[i]!; // descending
  let order = new Int32Array(n);
  let next = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  const counts = new Int32Array(65537);
  for (const shift of [0, 16]) {
    counts.fill(0);
    for (let i = 0; i < n; i++) counts[((keys[i]! >>> shift) & 0xffff) + 1]!++;
    for (let b = 0; b < 65536; b++) counts[b + 1]! += counts[b]!;
    for (let j = 0; j < n; j++) {
      const i = order[j]!;
      next[counts[(keys[i]! >>> shift) & 0xffff]!++] = i;
    }
    [order, next] = [next, order];
  }
  return order;
}

/**
 * Validate links and index them: one global order by |weight| descending, then CSR arrays filled
 * in that order so every node's segment is sorted too. With `base`, its edges come first and a
 * pair already there is not added twice.
 */
function indexEdges(n: number, rawLinks: RawLinks, base?: EdgeFields): EdgeFields {
  const extra = base?.nEdges ?? 0;
  const m = rawLinks.count + extra;
  const src = new Int32Array(m);
  const dst = new Int32Array(m);
  const weight = new Float64Array(m);
  let kept = 0;
  const seen = base ? new Set<number>() : null;
  if (base) {
    for (let e = 0; e < base.nEdges; e++) {
      src[kept] = base.edgeSrc[e]!;
      dst[kept] = base.edgeDst[e]!;
      weight[kept] = base.edgeWeight[e]!;
      seen!.add(src[kept]! * n + dst[kept]!);
      kept++;
    }
  }
  for (let k = 0; k < rawLinks.count; k++) {
    const s = rawLinks.src[k]!;
    const t = rawLinks.dst[k]!;
    const w = rawLinks.weight[k]!;
    if (s < 0 || t < 0 || !Number.isFinite(w)) continue;
    if (seen) {
      if (seen.has(s * n + t)) continue;
      seen.add(s * n + t);
    }
    src[kept] = s;
    dst[kept] = t;
    weight[kept] = w;
    kept++;
  }
  const absW = new Float64Array(kept);
  for (let e = 0; e < kept; e++) absW[e] = Math.abs(weight[e]!);
  const order = orderByDescending(absW);
  const edgeSrc = new Int32Array(kept);
  const edgeDst = new Int32Array(kept);
  const edgeWeight = new Float64Array(kept);
  for (let e = 0; e < kept; e++) {
    const o = order[e]!;
    edgeSrc[e] = src[o]!;
    edgeDst[e] = dst[o]!;
    edgeWeight[e] = weight[o]!;
  }
  return edgesInOrder(n, edgeSrc, edgeDst, edgeWeight);
}

/**
 * The edge fields of edges already in the explorer's order (by |weight| descending, as
 * orderByDescending sorts): the pruning shares and the CSR arrays, in one pass each and no sort.
 * The binary sidecar's links come in this order (./graphBinary.ts).
 */
export function edgesInOrder(n: number, edgeSrc: Int32Array, edgeDst: Int32Array, edgeWeight: Float64Array | Float32Array): EdgeFields {
  const kept = edgeSrc.length;
  // Every edge's share would be 4 bytes an edge (8 MB at 2M edges); a mark every EDGE_MARK edges
  // lets edgePrefix find the same prefix, summing the same way, from at most EDGE_MARK edges.
  const edgeAbsBefore = new Float64Array(Math.ceil(kept / EDGE_MARK));
  let running = 0;
  for (let e = 0; e < kept; e++) {
    if (e % EDGE_MARK === 0) edgeAbsBefore[e / EDGE_MARK] = running;
    running += Math.abs(edgeWeight[e]!);
  }

  const outStart = new Int32Array(n + 1);
  const inStart = new Int32Array(n + 1);
  const inputAbsSum = new Float64Array(n);
  for (let e = 0; e < kept; e++) {
    outStart[edgeSrc[e]! + 1]!++;
    inStart[edgeDst[e]! + 1]!++;
    inputAbsSum[edgeDst[e]!]! += Math.abs(edgeWeight[e]!);
  }
  for (let i = 0; i < n; i++) {
    outStart[i + 1]! += outStart[i]!;
    inStart[i + 1]! += inStart[i]!;
  }
  const outEdges = new Int32Array(kept);
  const inEdges = new Int32Array(kept);
  const outFill = outStart.slice(0, n);
  const inFill = inStart.slice(0, n);
  // Filling in global order keeps every segment sorted by |weight| descending.
  const outDst = new Int32Array(kept);
  const inSrc = new Int32Array(kept);
  for (let e = 0; e < kept; e++) {
    const out = outFill[edgeSrc[e]!]!++;
    outEdges[out] = e;
    outDst[out] = edgeDst[e]!;
    const into = inFill[edgeDst[e]!]!++;
    inEdges[into] = e;
    inSrc[into] = edgeSrc[e]!;
  }

  return { nEdges: kept, edgeSrc, edgeDst, edgeWeight, edgeAbsBefore, edgeAbsTotal: running, outStart, outEdges, inStart, inEdges, outDst, inSrc, inputAbsSum };
}

/** The same graph with more links (from the neighbourhood API); pairs already present are kept once. */
export function mergeLinks(graph: Graph, links: unknown[]): Graph {
  const edges = indexEdges(graph.n, linksFromObjects(graph.index, links), graph);
  if (edges.nEdges === graph.nEdges) return graph;
  return { ...graph, ...edges, linksTotal: Math.max(graph.linksTotal, edges.nEdges) };
}

/** Share of the target's total |input| this edge carries, signed (-1..1). */
export function edgeShare(graph: Graph, e: number): number {
  const sum = graph.inputAbsSum[graph.edgeDst[e]!]!;
  return sum > 0 ? graph.edgeWeight[e]! / sum : 0;
}

/** "L12/3456" for features, "Emb" / "Err L3" / "Logit" otherwise. */
export function featureKey(node: NodeInfo): string {
  switch (node.kind) {
    case Kind.Feature:
      return `L${node.layer}/${node.feature ?? "?"}`;
    case Kind.Error:
      return `Err L${node.layer}`;
    case Kind.Embedding:
      return "Emb";
    default:
      return "Logit";
  }
}

/** What a node is called in lists: the user's label, else the file's clerp, else a description. */
export function nodeLabel(node: NodeInfo, userLabel?: string): string {
  if (userLabel) return userLabel;
  switch (node.kind) {
    case Kind.Embedding:
      return `Emb: "${node.token}"`;
    case Kind.Error:
      return `Error: L${node.layer} "${node.token}"`;
    case Kind.Logit:
      return node.clerp || `Output "${node.token}"`;
    default:
      return node.clerp || featureKey(node);
  }
}
