// Link-graph layout: x = prompt position (column widths follow the busiest cell of each column),
// y = layer, embeddings at the bottom and logits at the top. Pure; only visible nodes are placed
// (hidden ones get NaN), so pruning compacts the picture.

import { ascendingBy, groupedBy } from "./ascending";
import { Kind, type Graph } from "./graph";

export const NODE_SPACING = 14; // world units between neighbours in a cell
export const ROW_HEIGHT = 56;
export const MIN_COLUMN = 56;
export const COLUMN_GAP = 18;
// Rows are spread so the picture is about this high for its width: wide graphs (many nodes per
// cell) would otherwise fit the screen as a thin band.
export const ASPECT = 0.5;

export interface Layout {
  x: Float32Array;
  y: Float32Array;
  columnStart: Float32Array; // per prompt position
  columnWidth: Float32Array;
  rowY: Float32Array; // per row (0 = embeddings)
  width: number;
  height: number;
}

/**
 * Every node in drawing order: by row, then prompt position, then within the cell logits by
 * probability and others by influence. Sorted once per graph; a layout is then one pass.
 */
const orders = new WeakMap<Graph["nodes"], Int32Array>();
export function layoutOrder(graph: Graph): Int32Array {
  let order = orders.get(graph.nodes);
  if (order) return order;
  const nCtx = Math.max(graph.nCtx, 1);
  const cell = new Int32Array(graph.n);
  const rank = new Float64Array(graph.n);
  for (let i = 0; i < graph.n; i++) {
    const node = graph.nodes[i]!;
    cell[i] = graph.row[i]! * nCtx + graph.ctx[i]!;
    const v = node.kind === Kind.Logit ? -node.tokenProb : graph.influence[i]!;
    rank[i] = Number.isNaN(v) ? Number.POSITIVE_INFINITY : v;
  }
  const all = new Int32Array(graph.n);
  for (let i = 0; i < graph.n; i++) all[i] = i;
  // By rank, then (stably) by cell: ordered by cell, rank and index.
  order = groupedBy(cell, (graph.nLayers + 2) * nCtx, ascendingBy(rank, all));
  orders.set(graph.nodes, order);
  return order;
}

export function computeLayout(graph: Graph, visible: Uint8Array): Layout {
  const nRows = graph.nLayers + 2;
  const nCtx = Math.max(graph.nCtx, 1);
  const cells = nRows * nCtx;
  const counts = new Int32Array(cells);
  for (let i = 0; i < graph.n; i++) {
    if (visible[i] === 1) counts[graph.row[i]! * nCtx + graph.ctx[i]!]!++;
  }
  const columnMax = new Int32Array(nCtx);
  for (let r = 0; r < nRows; r++) {
    for (let c = 0; c < nCtx; c++) columnMax[c] = Math.max(columnMax[c]!, counts[r * nCtx + c]!);
  }
  const columnStart = new Float32Array(nCtx);
  const columnWidth = new Float32Array(nCtx);
  let cursor = 0;
  for (let c = 0; c < nCtx; c++) {
    columnStart[c] = cursor;
    columnWidth[c] = Math.max(MIN_COLUMN, columnMax[c]! * NODE_SPACING);
    cursor += columnWidth[c]! + COLUMN_GAP;
  }
  const rowHeight = Math.max(ROW_HEIGHT, ((cursor - COLUMN_GAP) * ASPECT) / Math.max(nRows - 1, 1));
  const rowY = new Float32Array(nRows);
  for (let r = 0; r < nRows; r++) rowY[r] = (nRows - 1 - r) * rowHeight;

  // One pass in the precomputed order: the k-th visible node of a cell takes its k-th slot.
  const x = new Float32Array(graph.n).fill(Number.NaN);
  const y = new Float32Array(graph.n).fill(Number.NaN);
  const slot = new Int32Array(cells);
  for (const i of layoutOrder(graph)) {
    if (visible[i] !== 1) continue;
    const r = graph.row[i]!;
    const c = graph.ctx[i]!;
    const cell = r * nCtx + c;
    const k = slot[cell]!++;
    x[i] = columnStart[c]! + ((k + 0.5) * columnWidth[c]!) / counts[cell]!;
    y[i] = rowY[r]!;
  }
  return {
    x,
    y,
    columnStart,
    columnWidth,
    rowY,
    width: Math.max(cursor - COLUMN_GAP, 1),
    height: (nRows - 1) * rowHeight,
  };
}
