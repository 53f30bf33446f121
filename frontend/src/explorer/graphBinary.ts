// Reading the binary sidecar of a stored graph (the spec is contract/graph_binary.py): the
// graph's JSON without its links, then the links as typed arrays already in the explorer's edge
// order. The links are not parsed, resolved or sorted here: they are read from the response as it
// streams, straight into the arrays the page keeps, and the adjacency is filled in one pass
// (edgesInOrder). Anything unexpected throws GraphBinaryError, and the loader reads the graph's
// JSON instead (./graphSource.ts).
//
// Streaming is for memory: the whole sidecar (56 MB for 2M links) is never in one buffer, and the
// page keeps nothing of the document (the node records, 24 MB of that sidecar). Export is the one
// thing that needs them, and reads them again then: only the document, the first section
// (sidecarRecords).

import { edgesInOrder, graphNodes, withEdges, type EdgeFields, type Graph, type GraphNodes } from "./graph";

export class GraphBinaryError extends Error {}

const MAGIC = "CAGRAPHB";
const VERSION = 1;
const HEADER_BYTES = 96;

export interface Header {
  records: number;
  links: number;
  weightBytes: number;
  documentOffset: number;
  documentBytes: number;
  sourceOffset: number;
  targetOffset: number;
  weightOffset: number;
  total: number;
  artifactSha256: string; // hex, of the JSON artifact the sidecar was made from
}

const pad = (size: number): number => (8 - (size % 8)) % 8;

function readHeader(bytes: Uint8Array): Header {
  if (String.fromCharCode(...bytes.subarray(0, 8)) !== MAGIC) throw new GraphBinaryError("not a graph sidecar (bad magic)");
  const view = new DataView(bytes.buffer, bytes.byteOffset, HEADER_BYTES);
  const u32 = (at: number): number => view.getUint32(at, true);
  if (u32(8) !== VERSION || u32(12) !== HEADER_BYTES) throw new GraphBinaryError(`graph sidecar version ${u32(8)}; this page reads ${VERSION}`);
  const h: Header = {
    records: u32(16),
    links: u32(20),
    weightBytes: u32(24),
    documentOffset: u32(32),
    documentBytes: u32(36),
    sourceOffset: u32(40),
    targetOffset: u32(44),
    weightOffset: u32(48),
    total: u32(52),
    artifactSha256: Array.from(bytes.subarray(56, 88), (b) => b.toString(16).padStart(2, "0")).join(""),
  };
  const expected: [number, number][] = [
    [h.documentOffset, HEADER_BYTES],
    [h.sourceOffset, h.documentOffset + h.documentBytes + pad(h.documentBytes)],
    [h.targetOffset, h.sourceOffset + 4 * h.links + pad(4 * h.links)],
    [h.weightOffset, h.targetOffset + 4 * h.links + pad(4 * h.links)],
    [h.total, h.weightOffset + h.weightBytes * h.links + pad(h.weightBytes * h.links)],
  ];
  if ((h.weightBytes !== 4 && h.weightBytes !== 8) || u32(28) !== 0 || u32(92) !== 0 || expected.some(([a, b]) => a !== b)) {
    throw new GraphBinaryError("the graph sidecar's header does not match its sections");
  }
  return h;
}

// Typed arrays view memory in the platform's byte order; the sidecar is little-endian.
const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** A response body read into buffers of the caller's choosing, whatever its chunks. */
class SidecarStream {
  private chunk: Uint8Array = new Uint8Array(0);
  private at = 0;

  constructor(private readonly reader: ReadableStreamDefaultReader<Uint8Array>) {}

  /** Fills `target` with the next bytes; false when the body ended first. */
  async fill(target: Uint8Array): Promise<boolean> {
    let filled = 0;
    while (filled < target.length) {
      if (this.at === this.chunk.length) {
        const { done, value } = await this.reader.read();
        if (done) return false;
        this.chunk = value;
        this.at = 0;
      }
      const n = Math.min(target.length - filled, this.chunk.length - this.at);
      target.set(this.chunk.subarray(this.at, this.at + n), filled);
      filled += n;
      this.at += n;
    }
    return true;
  }

  /** The next section, into `target` (its length); then its padding. */
  async section(target: Uint8Array, padding: number): Promise<void> {
    if (!(await this.fill(target)) || !(await this.fill(new Uint8Array(padding)))) {
      throw new GraphBinaryError("the graph sidecar is shorter than its header says");
    }
  }

  async header(): Promise<Header> {
    if (!littleEndian) throw new GraphBinaryError("this platform is big-endian");
    const bytes = new Uint8Array(HEADER_BYTES);
    if (!(await this.fill(bytes))) throw new GraphBinaryError("too short for a graph sidecar");
    return readHeader(bytes);
  }

  /** Checks that nothing follows the last section. */
  async end(): Promise<void> {
    if (this.at < this.chunk.length || !(await this.reader.read()).done) {
      throw new GraphBinaryError("the graph sidecar is longer than its header says");
    }
  }

  async document(h: Header): Promise<Uint8Array> {
    const text = new Uint8Array(h.documentBytes);
    await this.section(text, pad(h.documentBytes));
    return text;
  }
}

const parseDocument = (text: Uint8Array): unknown => JSON.parse(new TextDecoder().decode(text));

/** A sidecar document's nodes: what graphNodes reads of it, less the parsed records themselves
 * (a sidecar's graph reads them again from the sidecar, on export: see sidecarGraph). */
export type DocumentNodes = Omit<GraphNodes, "rawNodes">;

/** The nodes of a sidecar's document (its UTF-8 JSON). */
export function documentNodes(document: Uint8Array): DocumentNodes {
  const { rawNodes: _records, ...nodes } = graphNodes(parseDocument(document));
  return nodes;
}

/** A sidecar's link arrays. */
export interface SidecarLinks {
  edgeSrc: Int32Array;
  edgeDst: Int32Array;
  edgeWeight: Float64Array | Float32Array; // float32 when the sidecar's are: each reads back as the JSON's float64
}

/** A sidecar whose header and document have arrived; `links()` reads the rest of its body. */
export interface OpenSidecar {
  header: Header;
  document: Uint8Array;
  links: () => Promise<SidecarLinks>;
}

/** Starts reading a sidecar from a response's body: its header and document, then (on `links()`)
 * each link section straight into its own array. */
export async function openSidecar(body: ReadableStream<Uint8Array>): Promise<OpenSidecar> {
  const stream = new SidecarStream(body.getReader());
  const header = await stream.header();
  const document = await stream.document(header);
  const links = async (): Promise<SidecarLinks> => {
    const edgeSrc = new Int32Array(header.links);
    const edgeDst = new Int32Array(header.links);
    const edgeWeight = header.weightBytes === 8 ? new Float64Array(header.links) : new Float32Array(header.links);
    for (const array of [edgeSrc, edgeDst, edgeWeight]) {
      await stream.section(new Uint8Array(array.buffer), pad(array.byteLength));
    }
    await stream.end();
    return { edgeSrc, edgeDst, edgeWeight };
  };
  return { header, document, links };
}

/** The indexed edges of a sidecar's links, whose ends are positions in the file's `records` nodes. */
export function sidecarEdges(links: SidecarLinks, records: number): EdgeFields {
  const { edgeSrc, edgeDst, edgeWeight } = links;
  const m = edgeSrc.length;
  // A u32 at or above n (read as int32: also anything >= 2^31, which is negative) is refused.
  for (let e = 0; e < m; e++) {
    if (edgeSrc[e]! >>> 0 >= records || edgeDst[e]! >>> 0 >= records) throw new GraphBinaryError("a link of the graph sidecar names no node");
  }
  // The adjacency trusts the order: check it (float32 |weight| never rising), and finiteness.
  let previous = Infinity;
  for (let e = 0; e < m; e++) {
    const w = edgeWeight[e]!;
    const key = Math.fround(Math.abs(w));
    if (!Number.isFinite(w) || key > previous) throw new GraphBinaryError("the graph sidecar's weights are not finite numbers in the explorer's order");
    previous = key;
  }
  return edgesInOrder(records, edgeSrc, edgeDst, edgeWeight);
}

/**
 * The graph of a sidecar read from `url`, from its nodes (graphNodes of its document) and its
 * edges (sidecarEdges): the same Graph buildGraph makes of the artifact's JSON, but with its node
 * records left in the sidecar (RawNodes), to be read again on export.
 */
export function sidecarGraph(header: Header, nodes: DocumentNodes, edges: EdgeFields, url: string): Graph {
  // Link ends are positions in the file's nodes: node indices only when every node was kept.
  if (nodes.records !== header.records || nodes.n !== header.records) throw new GraphBinaryError("the graph sidecar's nodes are not the explorer's nodes");
  return withEdges({ ...nodes, rawNodes: { sidecar: url, artifactSha256: header.artifactSha256 } }, edges, header.links);
}

/**
 * The node records of a sidecar read again (for export), from its body: those of the same
 * artifact the graph came from (`artifactSha256`), or a GraphBinaryError. The links, after the
 * records, are not downloaded.
 */
export async function sidecarRecords(body: ReadableStream<Uint8Array>, artifactSha256: string): Promise<unknown[]> {
  const reader = body.getReader();
  try {
    const stream = new SidecarStream(reader);
    const h = await stream.header();
    if (h.artifactSha256 !== artifactSha256) throw new GraphBinaryError("the graph's file changed since the page opened it: reload the page");
    const nodes = (parseDocument(await stream.document(h)) as { nodes?: unknown }).nodes;
    if (!Array.isArray(nodes) || nodes.length !== h.records) throw new GraphBinaryError("the graph sidecar's nodes are not the explorer's nodes");
    return nodes;
  } finally {
    // The rest of the body is not needed: stop the download. A body that has failed by then
    // rejects the cancel with its error, which no longer matters here.
    reader.cancel().catch(() => {});
  }
}
