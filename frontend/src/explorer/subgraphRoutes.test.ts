import { describe, expect, it } from "vitest";
import { boxesHit, curvePoints, placeLabels, routeEdge, segmentHitsBox, textBox } from "./subgraphRoutes";

describe("segmentHitsBox", () => {
  const box = { x0: 10, y0: 10, x1: 20, y1: 20 };
  it("finds a segment through, into or along a box, and none beside it", () => {
    expect(segmentHitsBox({ x: 0, y: 15 }, { x: 30, y: 15 }, box)).toBe(true);
    expect(segmentHitsBox({ x: 15, y: 15 }, { x: 15, y: 40 }, box)).toBe(true);
    expect(segmentHitsBox({ x: 0, y: 25 }, { x: 30, y: 25 }, box)).toBe(false);
    expect(segmentHitsBox({ x: 0, y: 0 }, { x: 5, y: 30 }, box)).toBe(false);
  });
});

describe("routeEdge", () => {
  const a = { x: 0, y: 100 };
  const b = { x: 200, y: 100 };
  it("keeps an edge straight when no label is in its way", () => {
    expect(routeEdge(a, b, [{ x0: 80, y0: 120, x1: 120, y1: 130 }])).toBeNull();
  });
  it("bends an edge around a label on its straight line, by the least bend that clears it", () => {
    const label = textBox(100, 104, 12, "middle");
    expect(boxesHit([a, b], [label])).toBe(1);
    const control = routeEdge(a, b, [label]);
    expect(control).not.toBeNull();
    expect(boxesHit(curvePoints(a, b, control), [label])).toBe(0);
    // The least bend tried (0.1 of its length, the curve's middle 20 px off the line) clears
    // a label 16 px high, so no bigger one is used.
    expect(Math.abs(control!.y - 100)).toBeCloseTo(40);
    expect(control!.x).toBeCloseTo(100);
  });
  it("goes around labels on both sides of the line when one side is blocked further out", () => {
    const labels = [textBox(100, 104, 12, "middle"), textBox(100, 70, 30, "middle")];
    const control = routeEdge(a, b, labels);
    expect(boxesHit(curvePoints(a, b, control), labels)).toBe(0);
    expect(control!.y).toBeGreaterThan(100); // below: above, the second label blocks it
  });
});

describe("placeLabels", () => {
  it("moves a label off the side its node's edges leave from", () => {
    // One node above another, an edge straight down between them: the top node's label
    // would sit on that edge below it, so it goes above (or to a side).
    const pts = [{ x: 100, y: 40 }, { x: 100, y: 140 }];
    const [top, bottom] = placeLabels(pts, [10, 10], [8, 8], [[0, 1]], new Set());
    const box = textBox(100 + top!.dx, 40 + top!.dy, 10, top!.anchor);
    expect(segmentHitsBox(pts[0]!, pts[1]!, box)).toBe(false);
    expect(bottom).toEqual({ dx: 0, dy: 20, anchor: "middle" }); // below, as preferred: clear
  });
  it("keeps labels of neighbours in a row from overlapping", () => {
    const pts = [{ x: 100, y: 100 }, { x: 150, y: 100 }];
    const places = placeLabels(pts, [14, 14], [8, 8], [], new Set());
    const boxes = places.map((p, u) => textBox(pts[u]!.x + p.dx, pts[u]!.y + p.dy, 14, p.anchor));
    expect(boxes[0]!.x1 <= boxes[1]!.x0 || boxes[0]!.y1 <= boxes[1]!.y0 || boxes[1]!.y1 <= boxes[0]!.y0).toBe(true);
  });
});
