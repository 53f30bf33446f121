// Uniform-grid spatial index for hit testing: built once per layout (counting sort into flat
// arrays), a query looks at the few cells around the pointer instead of scanning every node.

export interface Grid {
  cell: number;
  cols: number;
  rows: number;
  minX: number;
  minY: number;
  start: Int32Array; // CSR over cells
  items: Int32Array;
  x: Float32Array;
  y: Float32Array;
}

export function buildGrid(x: Float32Array, y: Float32Array, cell = 16): Grid {
  let minX = Infinity;
  let minY = Infinity;
  let maxX = -Infinity;
  let maxY = -Infinity;
  for (let i = 0; i < x.length; i++) {
    const xi = x[i]!;
    const yi = y[i]!;
    if (Number.isNaN(xi) || Number.isNaN(yi)) continue;
    if (xi < minX) minX = xi;
    if (xi > maxX) maxX = xi;
    if (yi < minY) minY = yi;
    if (yi > maxY) maxY = yi;
  }
  if (minX === Infinity) {
    minX = minY = 0;
    maxX = maxY = 0;
  }
  // A big graph's world is wide (columns fit the busiest cell) and, spread to its aspect, high,
  // but its nodes sit on a few rows: 16-unit cells over that would be tens of millions of empty
  // cells to build per layout. Cells grow so there are at most a few per node.
  const area = (Math.floor((maxX - minX) / cell) + 1) * (Math.floor((maxY - minY) / cell) + 1);
  const budget = 4 * x.length + 64;
  if (area > budget) cell *= Math.sqrt(area / budget);
  const cols = Math.max(1, Math.floor((maxX - minX) / cell) + 1);
  const rows = Math.max(1, Math.floor((maxY - minY) / cell) + 1);
  const start = new Int32Array(cols * rows + 1);
  const cellOf = new Int32Array(x.length).fill(-1);
  for (let i = 0; i < x.length; i++) {
    if (Number.isNaN(x[i]!) || Number.isNaN(y[i]!)) continue;
    const c = Math.floor((x[i]! - minX) / cell) + Math.floor((y[i]! - minY) / cell) * cols;
    cellOf[i] = c;
    start[c + 1]!++;
  }
  for (let c = 0; c < cols * rows; c++) start[c + 1]! += start[c]!;
  const items = new Int32Array(start[cols * rows]!);
  const fill = start.slice(0, cols * rows);
  for (let i = 0; i < x.length; i++) if (cellOf[i]! >= 0) items[fill[cellOf[i]!]!++] = i;
  return { cell, cols, rows, minX, minY, start, items, x, y };
}

/**
 * The node nearest (wx, wy) within `radius` world x-units, or -1. `yScale` is how much larger a
 * world y-unit is than an x-unit on screen (the view scales x and y separately), so distances are
 * measured as the eye sees them.
 */
export function nearest(grid: Grid, wx: number, wy: number, radius: number, yScale = 1): number {
  const { cell, cols, rows, minX, minY, start, items, x, y } = grid;
  const ry = radius / yScale;
  const c0 = Math.max(0, Math.floor((wx - radius - minX) / cell));
  const c1 = Math.min(cols - 1, Math.floor((wx + radius - minX) / cell));
  const r0 = Math.max(0, Math.floor((wy - ry - minY) / cell));
  const r1 = Math.min(rows - 1, Math.floor((wy + ry - minY) / cell));
  let best = -1;
  let bestD = radius * radius;
  for (let r = r0; r <= r1; r++) {
    for (let c = c0; c <= c1; c++) {
      const k = r * cols + c;
      for (let j = start[k]!; j < start[k + 1]!; j++) {
        const i = items[j]!;
        const dx = x[i]! - wx;
        const dy = (y[i]! - wy) * yScale;
        const d = dx * dx + dy * dy;
        if (d <= bestD) {
          bestD = d;
          best = i;
        }
      }
    }
  }
  return best;
}

/** Every node inside the world rectangle (for the PNG/SVG export of what is on screen). */
export function inRect(grid: Grid, x0: number, y0: number, x1: number, y1: number): number[] {
  const out: number[] = [];
  const { cell, cols, rows, minX, minY, start, items, x, y } = grid;
  const c0 = Math.max(0, Math.floor((x0 - minX) / cell));
  const c1 = Math.min(cols - 1, Math.floor((x1 - minX) / cell));
  const r0 = Math.max(0, Math.floor((y0 - minY) / cell));
  const r1 = Math.min(rows - 1, Math.floor((y1 - minY) / cell));
  for (let r = r0; r <= r1; r++) {
    for (let c = c0; c <= c1; c++) {
      const k = r * cols + c;
      for (let j = start[k]!; j < start[k + 1]!; j++) {
        const i = items[j]!;
        if (x[i]! >= x0 && x[i]! <= x1 && y[i]! >= y0 && y[i]! <= y1) out.push(i);
      }
    }
  }
  return out;
}
