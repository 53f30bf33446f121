// Reading the binary sidecar of a stored graph (the spec is contract/graph_binary.py): the
// graph's JSON without its links, then the links as typed arrays already in the explorer's edge
// order. The links are not parsed, resolved or sorted here: they are viewed where they lie, and
// the adjacency is filled in one pass (edgesInOrder). Anything unexpected throws
// GraphBinaryError, and the loader reads the graph's JSON instead (./graphSource.ts).

import { edgesInOrder, graphWithEdges, type Graph } from "./graph";

export class GraphBinaryError extends Error {}

const MAGIC = "CAGRAPHB";
const VERSION = 1;
const HEADER_BYTES = 96;

interface Header {
  records: number;
  links: number;
  weightBytes: number;
  documentOffset: number;
  documentBytes: number;
  sourceOffset: number;
  targetOffset: number;
  weightOffset: number;
}

const pad = (size: number): number => (8 - (size % 8)) % 8;

function readHeader(bytes: Uint8Array): Header {
  if (bytes.length < HEADER_BYTES) throw new GraphBinaryError("too short for a graph sidecar");
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
  };
  const total = u32(52);
  const expected: [number, number][] = [
    [h.documentOffset, HEADER_BYTES],
    [h.sourceOffset, h.documentOffset + h.documentBytes + pad(h.documentBytes)],
    [h.targetOffset, h.sourceOffset + 4 * h.links + pad(4 * h.links)],
    [h.weightOffset, h.targetOffset + 4 * h.links + pad(4 * h.links)],
    [total, h.weightOffset + h.weightBytes * h.links + pad(h.weightBytes * h.links)],
    [total, bytes.length],
  ];
  if ((h.weightBytes !== 4 && h.weightBytes !== 8) || u32(28) !== 0 || u32(92) !== 0 || expected.some(([a, b]) => a !== b)) {
    throw new GraphBinaryError("the graph sidecar's header does not match its sections");
  }
  return h;
}

// Typed arrays view memory in the platform's byte order; the sidecar is little-endian.
const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** The graph in a sidecar's bytes; the same Graph buildGraph makes of the artifact's JSON. */
export function graphFromBinary(input: Uint8Array): Graph {
  if (!littleEndian) throw new GraphBinaryError("this platform is big-endian");
  // Views need their offsets aligned: a response's bytes start at 0; copy anything else.
  const bytes = input.byteOffset % 8 === 0 ? input : input.slice();
  const h = readHeader(bytes);
  const text = bytes.subarray(h.documentOffset, h.documentOffset + h.documentBytes);
  const json: unknown = JSON.parse(new TextDecoder().decode(text));
  const graph = graphWithEdges(json, (_index, n, records) => {
    // Link ends are positions in the file's nodes: node indices only when every node was kept.
    if (records !== h.records || n !== records) throw new GraphBinaryError("the graph sidecar's nodes are not the explorer's nodes");
    const edgeSrc = new Int32Array(bytes.buffer, bytes.byteOffset + h.sourceOffset, h.links);
    const edgeDst = new Int32Array(bytes.buffer, bytes.byteOffset + h.targetOffset, h.links);
    // A u32 at or above n (read as int32: also anything >= 2^31, which is negative) is refused.
    for (let e = 0; e < h.links; e++) {
      if (edgeSrc[e]! >>> 0 >= n || edgeDst[e]! >>> 0 >= n) throw new GraphBinaryError("a link of the graph sidecar names no node");
    }
    const at = bytes.byteOffset + h.weightOffset;
    const edgeWeight = h.weightBytes === 8 ? new Float64Array(bytes.buffer, at, h.links) : Float64Array.from(new Float32Array(bytes.buffer, at, h.links));
    // The adjacency trusts the order: check it (float32 |weight| never rising), and finiteness.
    let previous = Infinity;
    for (let e = 0; e < h.links; e++) {
      const w = edgeWeight[e]!;
      const key = Math.fround(Math.abs(w));
      if (!Number.isFinite(w) || key > previous) throw new GraphBinaryError("the graph sidecar's weights are not finite numbers in the explorer's order");
      previous = key;
    }
    return { edges: edgesInOrder(n, edgeSrc, edgeDst, edgeWeight), count: h.links };
  });
  return { ...graph, rawNodes: { text } };
}
