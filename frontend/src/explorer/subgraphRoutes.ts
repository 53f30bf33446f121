// Where the subgraph view puts its labels and how its edges go, so that no edge runs through a
// label: each label takes the side of its node that the fewest edges cross, then an edge that
// would still cross a label bends around it (a quadratic curve, the least bend that clears every
// label). Pure geometry on estimated text boxes, tested without a DOM (subgraphRoutes.test.ts).

export interface Point {
  x: number;
  y: number;
}

export interface Box {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

export type Anchor = "start" | "middle" | "end";

/** A label's place relative to its node: the text's anchor point and alignment. */
export interface LabelPlace {
  dx: number;
  dy: number;
  anchor: Anchor;
}

// The 11 px label font: about 6.2 px a character on average, 8 px above the baseline, 3 below.
const CHAR_PX = 6.2;
const ASCENT = 9;
const DESCENT = 3;
const MARGIN = 2;

/** The box of `chars` characters of label text anchored at (x, baseline). */
export function textBox(x: number, baseline: number, chars: number, anchor: Anchor, charPx = CHAR_PX): Box {
  const width = chars * charPx;
  const left = anchor === "start" ? x : anchor === "end" ? x - width : x - width / 2;
  return { x0: left - MARGIN, y0: baseline - ASCENT - MARGIN, x1: left + width + MARGIN, y1: baseline + DESCENT + MARGIN };
}

/** Whether the segment a–b passes through the box (Liang–Barsky clipping). */
export function segmentHitsBox(a: Point, b: Point, box: Box): boolean {
  const dx = b.x - a.x;
  const dy = b.y - a.y;
  let lo = 0;
  let hi = 1;
  for (const [p, q] of [[-dx, a.x - box.x0], [dx, box.x1 - a.x], [-dy, a.y - box.y0], [dy, box.y1 - a.y]] as const) {
    if (p === 0) {
      if (q < 0) return false;
      continue;
    }
    const t = q / p;
    if (p < 0) lo = Math.max(lo, t);
    else hi = Math.min(hi, t);
    if (lo > hi) return false;
  }
  return true;
}

/** Points along the quadratic curve a → b bent towards `control` (a straight line when null). */
export function curvePoints(a: Point, b: Point, control: Point | null, steps = 16): Point[] {
  if (!control) return [a, b];
  const out: Point[] = [];
  for (let k = 0; k <= steps; k++) {
    const t = k / steps;
    const u = 1 - t;
    out.push({ x: u * u * a.x + 2 * u * t * control.x + t * t * b.x, y: u * u * a.y + 2 * u * t * control.y + t * t * b.y });
  }
  return out;
}

/** How many of the boxes the polyline passes through. */
export function boxesHit(points: Point[], boxes: readonly Box[]): number {
  let hits = 0;
  for (const box of boxes) {
    for (let k = 1; k < points.length; k++) {
      if (segmentHitsBox(points[k - 1]!, points[k]!, box)) {
        hits++;
        break;
      }
    }
  }
  return hits;
}

function overlaps(a: Box, b: Box): boolean {
  return a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1;
}

/**
 * A place for each unit's label: below or above (the preferred one first, alternating along a
 * row as before), else beside or at a corner, whichever crosses the fewest edges and overlaps
 * no label placed before it or any node. `radius[u]` is the half-size of unit u's shape.
 */
export function placeLabels(pts: readonly Point[], chars: readonly number[], radius: readonly number[], edges: readonly [number, number][], preferAbove: ReadonlySet<number>): LabelPlace[] {
  const nodeBoxes = pts.map((p, u) => ({ x0: p.x - radius[u]!, y0: p.y - radius[u]!, x1: p.x + radius[u]!, y1: p.y + radius[u]! }));
  const placed: Box[] = [];
  return pts.map((p, u) => {
    const r = radius[u]!;
    const below: LabelPlace = { dx: 0, dy: r + 12, anchor: "middle" };
    const above: LabelPlace = { dx: 0, dy: -(r + 5), anchor: "middle" };
    const sides: LabelPlace[] = [
      { dx: r + 5, dy: 4, anchor: "start" },
      { dx: -(r + 5), dy: 4, anchor: "end" },
      { dx: r, dy: r + 12, anchor: "start" },
      { dx: -r, dy: r + 12, anchor: "end" },
      { dx: r, dy: -(r + 5), anchor: "start" },
      { dx: -r, dy: -(r + 5), anchor: "end" },
    ];
    const candidates = [...(preferAbove.has(u) ? [above, below] : [below, above]), ...sides];
    let best = candidates[0]!;
    let bestScore = Infinity;
    candidates.forEach((place, rank) => {
      const box = textBox(p.x + place.dx, p.y + place.dy, chars[u]!, place.anchor);
      let score = rank * 0.1; // ties go to the preferred place
      for (const [from, to] of edges) if (segmentHitsBox(pts[from]!, pts[to]!, box)) score += 1;
      // Labels on labels or nodes are worse than any number of edges crossing one.
      for (const other of placed) if (overlaps(box, other)) score += 100;
      nodeBoxes.forEach((nodeBox, v) => {
        if (v !== u && overlaps(box, nodeBox)) score += 100;
      });
      if (score < bestScore) {
        bestScore = score;
        best = place;
      }
    });
    placed.push(textBox(p.x + best.dx, p.y + best.dy, chars[u]!, best.anchor));
    return best;
  });
}

// Bends tried, as a share of the edge's length, perpendicular to it, least first.
const BENDS = [0.1, -0.1, 0.2, -0.2, 0.3, -0.3, 0.45, -0.45, 0.6, -0.6, 0.8, -0.8];

/**
 * The control point of the curve the edge a → b takes: null (straight) when the straight line
 * crosses none of the label boxes, else the least bend that crosses none, else the bend that
 * crosses the fewest.
 */
export function routeEdge(a: Point, b: Point, labels: readonly Box[]): Point | null {
  let best: Point | null = null;
  let bestHits = boxesHit([a, b], labels);
  if (bestHits === 0) return null;
  const mid = { x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 };
  const normal = { x: -(b.y - a.y), y: b.x - a.x }; // the length of the edge, perpendicular to it
  for (const bend of BENDS) {
    // The curve's own midpoint lies half way to its control point: bend twice as far.
    const control = { x: mid.x + 2 * bend * normal.x, y: mid.y + 2 * bend * normal.y };
    const hits = boxesHit(curvePoints(a, b, control), labels);
    if (hits < bestHits) {
      best = control;
      bestHits = hits;
      if (hits === 0) break;
    }
  }
  return best;
}
