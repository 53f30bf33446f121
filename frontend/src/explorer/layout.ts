// Link-graph layout: x = prompt position (column widths follow the busiest cell of each column),
// y = layer, embeddings at the bottom and logits at the top. Pure; only visible nodes are placed
// (hidden ones get NaN), so pruning compacts the picture.

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

export function computeLayout(graph: Graph, visible: Uint8Array): Layout {
  const nRows = graph.nLayers + 2;
  const nCtx = Math.max(graph.nCtx, 1);
  const cells = nRows * nCtx;
  const counts = new Int32Array(cells + 1);
  for (let i = 0; i < graph.n; i++) {
    if (visible[i] === 1) counts[graph.row[i]! * nCtx + graph.ctx[i]! + 1]!++;
  }
  const columnMax = new Int32Array(nCtx);
  for (let r = 0; r < nRows; r++) {
    for (let c = 0; c < nCtx; c++) columnMax[c] = Math.max(columnMax[c]!, counts[r * nCtx + c + 1]!);
  }
  for (let k = 0; k < cells; k++) counts[k + 1]! += counts[k]!;

  // Bucket visible nodes by cell, then order each cell: logits by probability, others by influence.
  const members = new Int32Array(counts[cells]!);
  const fill = counts.slice(0, cells);
  for (let i = 0; i < graph.n; i++) {
    if (visible[i] === 1) members[fill[graph.row[i]! * nCtx + graph.ctx[i]!]!++] = i;
  }
  const rank = (i: number): number => {
    const node = graph.nodes[i]!;
    const v = node.kind === Kind.Logit ? -node.tokenProb : graph.influence[i]!;
    return Number.isNaN(v) ? Number.POSITIVE_INFINITY : v;
  };

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

  const x = new Float32Array(graph.n).fill(Number.NaN);
  const y = new Float32Array(graph.n).fill(Number.NaN);
  for (let cell = 0; cell < cells; cell++) {
    const start = counts[cell]!;
    const end = counts[cell + 1]!;
    if (end === start) continue;
    const segment = members.subarray(start, end);
    if (segment.length > 1) segment.sort((a, b) => rank(a) - rank(b));
    const r = Math.floor(cell / nCtx);
    const c = cell % nCtx;
    const step = columnWidth[c]! / segment.length;
    for (let k = 0; k < segment.length; k++) {
      const i = segment[k]!;
      x[i] = columnStart[c]! + (k + 0.5) * step;
      y[i] = rowY[r]!;
    }
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
