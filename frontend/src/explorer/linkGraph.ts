// The link graph: three stacked canvases. "base" holds the grid, labels and every visible node;
// "focus" the edges and rings of the selected and pinned nodes; "hover" the hovered node's edges.
// A hover repaints only the top layer, and only the hovered node's edges are walked, so the cost
// does not grow with the total number of edges.

import { edgeShare, featureKey, Kind, type Graph } from "./graph";
import { COLUMN_GAP, layoutOrder } from "./layout";
import { edgePrefix, edgeVisible } from "./prune";
import { Scheduler, whenIdle, type LayerName } from "./scheduler";
import { nearest } from "./spatial";
import { nodeName, select, togglePin, viewGrid, type ExplorerState, type ExplorerStore } from "./state";
import { bucketStyle, COLORS, edgeBucket, formatNumber, N_BUCKETS, nodeFill, nodeRadius } from "./style";
import type { LinkType, Viewport } from "./urlState";

export const MARGIN = { left: 56, right: 64, top: 96, bottom: 46 };
const GUTTER = 42; // width of the layer labels' column
const MAX_EDGES_PER_NODE = 4000; // strongest first; the tail is sub-pixel anyway

export interface LinkGraphHandle {
  scheduler: Scheduler;
  fit(): void;
  zoomBy(factor: number, cx?: number, cy?: number): void;
  panBy(dx: number, dy: number): void;
  size(): { width: number; height: number };
  /** Paint all layers onto one canvas (PNG export). */
  composite(): HTMLCanvasElement;
  hitTestMs: number[];
  /** Where node i is drawn, in client (page) coordinates; null when hidden. Tests use it. */
  clientPosition(i: number): { x: number; y: number } | null;
}

// Logit labels are drawn rising at 60°, from just above their node.
const LABEL_ANGLE = Math.PI / 3;
const LABEL_CHAR_PX = 6.3; // an 11px system-ui character, on average (fitting only; drawing measures)

/** A logit node's label: its token (a logit difference is "logit(a)-logit(b)") and probability. */
export function logitLabel(node: Graph["nodes"][number]): string {
  const p = Number.isNaN(node.tokenProb) ? "" : ` ${(node.tokenProb * 100).toFixed(node.tokenProb < 0.1 ? 1 : 0)}%`;
  return `${showToken(node.token).slice(0, 40)}${p}`;
}

const longestLabels = new WeakMap<ExplorerState["view"], number>();
function longestLogitLabel(s: ExplorerState): number {
  let longest = longestLabels.get(s.view);
  if (longest !== undefined) return longest;
  longest = 0;
  const g = s.graph;
  for (let i = 0; i < g.n; i++) {
    if (g.kind[i] === Kind.Logit && s.view.visible[i] === 1) longest = Math.max(longest, logitLabel(g.nodes[i]!).length);
  }
  longestLabels.set(s.view, longest);
  return longest;
}

/** Room above and right of the graph for the longest logit label (logits sit in the last
 * column), so a fitted view shows it whole. */
export function labelMargins(s: ExplorerState, width: number, height: number): { top: number; right: number } {
  const length = longestLogitLabel(s) * LABEL_CHAR_PX;
  return {
    top: Math.round(Math.min(Math.max(MARGIN.top, length * Math.sin(LABEL_ANGLE) + 16), height * 0.4)),
    right: Math.round(Math.min(Math.max(MARGIN.right, length * Math.cos(LABEL_ANGLE) + 8), width * 0.3)),
  };
}

/** An overlay canvas sized to its parent (device pixels), transformed to CSS pixels and
 * cleared, for the panels that paint over the link graph; null without a 2D context. */
export function clearedOverlay(
  canvas: HTMLCanvasElement,
): { ctx: CanvasRenderingContext2D; width: number; height: number } | null {
  const rect = canvas.parentElement!.getBoundingClientRect();
  const width = Math.max(1, Math.floor(rect.width));
  const height = Math.max(1, Math.floor(rect.height));
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.floor(width * dpr);
  canvas.height = Math.floor(height * dpr);
  canvas.style.width = `${width}px`;
  canvas.style.height = `${height}px`;
  const ctx = canvas.getContext("2d");
  if (!ctx) return null;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, width, height);
  return { ctx, width, height };
}

export function fitViewport(s: ExplorerState, width: number, height: number): Viewport {
  const { layout } = s.view;
  const { top, right } = labelMargins(s, width, height);
  const w = Math.max(width - MARGIN.left - right, 10);
  const h = Math.max(height - top - MARGIN.bottom, 10);
  // x and y scale separately, so the graph fills the canvas whatever its shape.
  const k = Math.min(w / Math.max(layout.width, 1), 4);
  const ky = Math.min(h / Math.max(layout.height, 1), 4 * Math.max(1, h / w));
  const extraX = (w - layout.width * k) / 2;
  return { x: -(MARGIN.left + extraX) / k, y: -top / ky, k, ky };
}

interface Ctx2D {
  ctx: CanvasRenderingContext2D;
  canvas: HTMLCanvasElement;
}

function makeLayer(parent: HTMLElement, name: string): Ctx2D {
  const canvas = document.createElement("canvas");
  canvas.className = `lg-layer lg-${name}`;
  parent.appendChild(canvas);
  const ctx = canvas.getContext("2d", { alpha: true });
  if (!ctx) throw new Error("canvas 2D is not available");
  return { ctx, canvas };
}

/** Collect the in-focus edges of node i into colour buckets of screen-space segments; with
 * `among`, only the edges whose other end is in that set. */
function collectEdges(
  s: ExplorerState,
  i: number,
  linkType: LinkType,
  buckets: number[][],
  vp: Viewport,
  among: ReadonlySet<number> | null = null,
): void {
  const g = s.graph;
  const { x, y } = s.view.layout;
  const visible = s.view.visible;
  const prefix = edgePrefix(g, s.thresholds.edge);
  const walk = (start: Int32Array, edges: Int32Array): void => {
    const from = start[i]!;
    const to = Math.min(start[i + 1]!, from + MAX_EDGES_PER_NODE);
    if (to === from) return;
    const maxAbs = Math.abs(g.edgeWeight[edges[from]!]!) || 1;
    for (let j = from; j < to; j++) {
      const e = edges[j]!;
      if (!edgeVisible(g, e, visible, prefix)) continue;
      const a = g.edgeSrc[e]!;
      const b = g.edgeDst[e]!;
      if (among && !(among.has(a) && among.has(b))) continue;
      const w = g.edgeWeight[e]!;
      const bucket = edgeBucket(w, edgeShare(g, e), Math.abs(w) / maxAbs);
      buckets[bucket]!.push(
        (x[a]! - vp.x) * vp.k,
        (y[a]! - vp.y) * vp.ky,
        (x[b]! - vp.x) * vp.k,
        (y[b]! - vp.y) * vp.ky,
      );
    }
  };
  // Among a set, each edge is walked once, from its source.
  if (linkType !== "output" && !among) walk(g.inStart, g.inEdges);
  if (linkType !== "input" || among) walk(g.outStart, g.outEdges);
}

/** The focus layer's edges in colour buckets: all of the selected node's, and among the pinned
 * nodes only those between two of them (or the selection), so many pins stay a picture of the
 * subgraph, not a hairball. */
export function focusSegments(s: ExplorerState, vp: Viewport): number[][] {
  const buckets = emptyBuckets();
  const focus = new Set(s.pinned);
  if (s.selected >= 0) {
    focus.add(s.selected);
    collectEdges(s, s.selected, s.linkType, buckets, vp);
  }
  const among = new Set(focus);
  among.delete(s.selected); // the selected node's edges are drawn already
  for (const i of s.pinned) if (i !== s.selected) collectEdges(s, i, s.linkType, buckets, vp, among);
  return buckets;
}

function strokeBuckets(ctx: CanvasRenderingContext2D, buckets: number[][]): void {
  ctx.lineCap = "round";
  for (let b = 0; b < N_BUCKETS; b++) {
    const segs = buckets[b]!;
    if (!segs.length) continue;
    const style = bucketStyle(b);
    ctx.strokeStyle = style.color;
    ctx.lineWidth = style.width;
    ctx.beginPath();
    for (let k = 0; k < segs.length; k += 4) {
      ctx.moveTo(segs[k]!, segs[k + 1]!);
      ctx.lineTo(segs[k + 2]!, segs[k + 3]!);
    }
    ctx.stroke();
  }
}

function ring(ctx: CanvasRenderingContext2D, s: ExplorerState, i: number, vp: Viewport, r: number): void {
  const { x, y } = s.view.layout;
  if (Number.isNaN(x[i]!)) return;
  ctx.moveTo((x[i]! - vp.x) * vp.k + r, (y[i]! - vp.y) * vp.ky);
  ctx.arc((x[i]! - vp.x) * vp.k, (y[i]! - vp.y) * vp.ky, r, 0, Math.PI * 2);
}

function glyph(ctx: CanvasRenderingContext2D, kind: number, sx: number, sy: number, r: number): void {
  switch (kind) {
    case Kind.Feature:
      ctx.moveTo(sx + r, sy);
      ctx.arc(sx, sy, r, 0, Math.PI * 2);
      break;
    case Kind.Logit:
      ctx.moveTo(sx, sy - r * 1.3);
      ctx.lineTo(sx + r * 1.3, sy);
      ctx.lineTo(sx, sy + r * 1.3);
      ctx.lineTo(sx - r * 1.3, sy);
      ctx.closePath();
      break;
    default:
      ctx.rect(sx - r, sy - r, r * 2, r * 2);
  }
}

function truncate(ctx: CanvasRenderingContext2D, text: string, width: number): string {
  if (ctx.measureText(text).width <= width) return text;
  let lo = 0;
  let hi = text.length;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (ctx.measureText(text.slice(0, mid) + "…").width <= width) lo = mid;
    else hi = mid - 1;
  }
  return lo > 0 ? text.slice(0, lo) + "…" : "";
}

export function showToken(token: string): string {
  return token.replace(/\n/g, "⏎").replace(/ /g, "\u00a0") || "∅";
}

function paintBase(ctx: CanvasRenderingContext2D, s: ExplorerState, vp: Viewport, width: number, height: number): void {
  const g: Graph = s.graph;
  const { layout, visible } = s.view;
  ctx.clearRect(0, 0, width, height);
  ctx.font = "11px system-ui, sans-serif";
  ctx.textBaseline = "middle";
  // Rows: a faint line per layer, labelled on the left.
  const nRows = layout.rowY.length;
  ctx.strokeStyle = COLORS.grid;
  ctx.lineWidth = 1;
  ctx.beginPath();
  for (let r = 0; r < nRows; r++) {
    const sy = Math.round((layout.rowY[r]! - vp.y) * vp.ky) + 0.5;
    ctx.moveTo(MARGIN.left - 8, sy);
    ctx.lineTo(width, sy);
  }
  ctx.stroke();
  // Prompt tokens under their columns; kept at the bottom edge when the embeddings are below it.
  ctx.textAlign = "center";
  const tokenY = Math.min((layout.rowY[0]! - vp.y) * vp.ky + 22, height - 10);
  // Columns too narrow for a few characters (a phone) get their tokens slanted down and left,
  // in the room under the row; a label never takes the next column's room.
  const pitch = Math.min(...Array.from(layout.columnWidth, (cw) => cw * vp.k)) + COLUMN_GAP * vp.k;
  const slant = pitch - 4 < ctx.measureText("abcd").width;
  const slantRoom = Math.max((height - tokenY + 6) / Math.sin(Math.PI / 4) - 4, 0);
  for (let c = 0; c < layout.columnStart.length; c++) {
    const left = (layout.columnStart[c]! - vp.x) * vp.k;
    const w = layout.columnWidth[c]! * vp.k;
    if (left + w < 0 || left > width || w < 6) continue;
    const token = showToken(g.metadata.promptTokens[c] ?? "");
    ctx.fillStyle = COLORS.ink;
    if (slant) {
      ctx.save();
      ctx.translate(left + w / 2 + 3, tokenY - 6);
      ctx.rotate(-Math.PI / 4);
      ctx.textAlign = "right";
      ctx.fillText(truncate(ctx, token, slantRoom), 0, 0);
      ctx.restore();
    } else {
      ctx.fillText(truncate(ctx, token, w + COLUMN_GAP * vp.k - 4), left + w / 2, tokenY);
    }
    ctx.fillStyle = COLORS.grid;
    ctx.fillRect(left, tokenY - 12, w, 1);
  }
  // Nodes, batched by kind: one path and one fill per kind.
  const r = nodeRadius(vp.k);
  const { x, y } = layout;
  const x0 = vp.x - 10 / vp.k;
  const x1 = vp.x + (width + 10) / vp.k;
  const y0 = vp.y - 10 / vp.ky;
  const y1 = vp.y + (height + 10) / vp.ky;
  // In drawing order a cell's nodes come left to right; zoomed out on a big graph several fall
  // on one pixel, and a glyph for each would only add path work (tens of thousands of arcs per
  // slider move) to paint what the first one already covers, give or take a fraction of a pixel.
  const order = layoutOrder(g);
  for (const kind of [Kind.Error, Kind.Embedding, Kind.Feature, Kind.Logit]) {
    ctx.beginPath();
    let lastX = Number.NaN;
    let lastY = Number.NaN;
    for (let j = 0; j < order.length; j++) {
      const i = order[j]!;
      if (visible[i] !== 1 || g.kind[i] !== kind) continue;
      const wx = x[i]!;
      const wy = y[i]!;
      if (wx < x0 || wx > x1 || wy < y0 || wy > y1) continue;
      const sx = (wx - vp.x) * vp.k;
      const sy = (wy - vp.y) * vp.ky;
      const px = Math.round(sx);
      const py = Math.round(sy);
      if (px === lastX && py === lastY) continue;
      lastX = px;
      lastY = py;
      glyph(ctx, kind, sx, sy, kind === Kind.Error ? r * 0.8 : r);
    }
    ctx.fillStyle = nodeFill(kind);
    ctx.globalAlpha = kind === Kind.Error ? 0.7 : 1;
    ctx.fill();
    ctx.globalAlpha = 1;
    if (kind === Kind.Feature && r > 2.5) {
      ctx.strokeStyle = COLORS.featureStroke;
      ctx.lineWidth = 0.8;
      ctx.stroke();
    }
  }
  // The layer gutter on the left, over the nodes; the focus and hover layers are clipped to the
  // right of it, so labels stay readable however the view is panned.
  ctx.fillStyle = "rgba(255,255,255,0.92)";
  ctx.fillRect(0, 0, GUTTER, height);
  ctx.fillStyle = COLORS.muted;
  ctx.textAlign = "right";
  const labelEvery = Math.max(1, Math.ceil(14 / Math.max(vp.ky * (layout.rowY[0]! - (layout.rowY[1] ?? 0)), 1)));
  for (let row = 0; row < nRows; row++) {
    if (row !== 0 && row !== nRows - 1 && row % labelEvery !== 0) continue;
    const sy = (layout.rowY[row]! - vp.y) * vp.ky;
    const label = row === 0 ? "Emb" : row === nRows - 1 ? "Logit" : `L${row - 1}`;
    ctx.fillText(label, GUTTER - 6, sy);
  }
  // Logit tokens and probabilities on top: most probable first, skipping labels that would
  // overlap one already drawn.
  ctx.textAlign = "left";
  ctx.fillStyle = COLORS.ink;
  const logits: number[] = [];
  for (let i = 0; i < g.n; i++) if (g.kind[i] === Kind.Logit && visible[i] === 1) logits.push(i);
  logits.sort((a, b) => (g.nodes[b]!.tokenProb || 0) - (g.nodes[a]!.tokenProb || 0));
  const labelled: number[] = [];
  for (const i of logits) {
    const node = g.nodes[i]!;
    const sx = (x[i]! - vp.x) * vp.k;
    const sy = (y[i]! - vp.y) * vp.ky - r - 6;
    if (sx < -50 || sx > width + 50) continue;
    if (labelled.some((other) => Math.abs(other - sx) < 11)) continue;
    labelled.push(sx);
    // Shortened (with an ellipsis) where the canvas's top or right edge would cut it.
    const room = Math.min((sy - 4) / Math.sin(LABEL_ANGLE), (width - sx - 4) / Math.cos(LABEL_ANGLE));
    const text = truncate(ctx, logitLabel(node), room);
    if (!text) continue;
    ctx.save();
    ctx.translate(sx, sy);
    ctx.rotate(-LABEL_ANGLE);
    ctx.fillText(text, 0, 0);
    ctx.restore();
  }
}

function emptyBuckets(): number[][] {
  return Array.from({ length: N_BUCKETS }, () => []);
}

function paintFocus(ctx: CanvasRenderingContext2D, s: ExplorerState, vp: Viewport, width: number, height: number): void {
  ctx.clearRect(0, 0, width, height);
  strokeBuckets(ctx, focusSegments(s, vp));
  const r = nodeRadius(vp.k);
  const rings: [readonly number[], string, number][] = [
    [s.searchResults, COLORS.search, 2],
    [s.pinned, COLORS.pinned, 2],
    [s.grouping, COLORS.grouping, 2.5],
    [s.selected >= 0 ? [s.selected] : [], COLORS.selected, 2.5],
  ];
  for (const [nodes, color, lineWidth] of rings) {
    if (!nodes.length) continue;
    ctx.strokeStyle = color;
    ctx.lineWidth = lineWidth;
    ctx.beginPath();
    for (const i of nodes) ring(ctx, s, i, vp, r + 3);
    ctx.stroke();
  }
}

function paintHover(ctx: CanvasRenderingContext2D, s: ExplorerState, vp: Viewport, width: number, height: number): void {
  ctx.clearRect(0, 0, width, height);
  const i = s.hovered;
  if (i < 0 || s.view.visible[i] !== 1) return;
  const buckets = emptyBuckets();
  collectEdges(s, i, "both", buckets, vp);
  strokeBuckets(ctx, buckets);
  ctx.strokeStyle = COLORS.ink;
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  ring(ctx, s, i, vp, nodeRadius(vp.k) + 2);
  ctx.stroke();
}

export function tooltipLines(s: ExplorerState, i: number): string[] {
  const node = s.graph.nodes[i]!;
  const lines = [nodeName(s, i), `${featureKey(node)} · position ${node.ctx} "${node.token}"`];
  const facts: string[] = [];
  if (!Number.isNaN(node.activation)) facts.push(`activation ${formatNumber(node.activation)}`);
  if (!Number.isNaN(node.influence)) facts.push(`influence ${formatNumber(node.influence)}`);
  if (!Number.isNaN(node.tokenProb)) facts.push(`p ${formatNumber(node.tokenProb)}`);
  if (facts.length) lines.push(facts.join(" · "));
  return lines;
}

export function setUpLinkGraph(element: HTMLElement, store: ExplorerStore): LinkGraphHandle {
  element.classList.add("link-graph");
  element.tabIndex = 0;
  const layers = { base: makeLayer(element, "base"), focus: makeLayer(element, "focus"), hover: makeLayer(element, "hover") };
  const fitButton = document.createElement("button");
  fitButton.type = "button";
  fitButton.className = "lg-fit";
  fitButton.textContent = "Fit";
  fitButton.title = "Fit to screen (0)";
  element.appendChild(fitButton);
  const tooltip = document.createElement("div");
  tooltip.className = "lg-tooltip";
  tooltip.hidden = true;
  element.appendChild(tooltip);
  let width = 0;
  let height = 0;
  let dpr = 1;
  const hitTestMs: number[] = [];

  const viewport = (): Viewport => {
    const s = store.get();
    if (s.viewport) return s.viewport;
    const fitted = fitViewport(s, width, height);
    return fitted;
  };

  const scheduler = new Scheduler((layer: LayerName) => {
    const { ctx } = layers[layer];
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    const s = store.get();
    const vp = viewport();
    if (layer === "base") {
      paintBase(ctx, s, vp, width, height);
      // The hit-test grid of what was just drawn, built once the page is idle (a slider drag
      // over, say) so the first hover does not pay for it; a hover before then builds it itself.
      const view = s.view;
      whenIdle(() => {
        if (store.get().view === view) viewGrid(view);
      });
      return;
    }
    ctx.save();
    ctx.beginPath();
    ctx.rect(GUTTER, 0, width - GUTTER, height);
    ctx.clip();
    if (layer === "focus") paintFocus(ctx, s, vp, width, height);
    else paintHover(ctx, s, vp, width, height);
    ctx.restore();
  });

  const resize = (): void => {
    const rect = element.getBoundingClientRect();
    width = Math.max(1, Math.floor(rect.width));
    height = Math.max(1, Math.floor(rect.height));
    dpr = window.devicePixelRatio || 1;
    for (const { canvas } of Object.values(layers)) {
      canvas.width = Math.floor(width * dpr);
      canvas.height = Math.floor(height * dpr);
      canvas.style.width = `${width}px`;
      canvas.style.height = `${height}px`;
    }
    scheduler.mark("base", "focus", "hover");
  };
  new ResizeObserver(resize).observe(element);
  resize();

  store.watch(["view", "viewport", "graph"], () => scheduler.mark("base", "focus", "hover"));
  store.watch(["selected", "pinned", "searchResults", "grouping", "linkType", "thresholds"], () => scheduler.mark("focus"));
  store.watch(["hovered"], () => scheduler.mark("hover"));
  store.watch(["hovered", "labels", "explanations", "showNames"], (s) => showTooltip(s));

  let pointer = { x: 0, y: 0 };
  let pointerInside = false; // hovers from the lists highlight the node but show no tooltip here
  function showTooltip(s: ExplorerState): void {
    if (s.hovered < 0 || !pointerInside) {
      tooltip.hidden = true;
      return;
    }
    tooltip.replaceChildren(
      ...tooltipLines(s, s.hovered).map((text, k) => {
        const line = document.createElement("div");
        line.className = k === 0 ? "lg-tooltip-title" : "lg-tooltip-line";
        line.textContent = text;
        return line;
      }),
    );
    tooltip.hidden = false;
    const left = Math.min(pointer.x + 14, width - 260);
    tooltip.style.transform = `translate(${Math.max(0, left)}px, ${pointer.y + 14}px)`;
  }

  const setViewport = (vp: Viewport): void => store.set({ viewport: vp });
  const handle: LinkGraphHandle = {
    scheduler,
    hitTestMs,
    fit: () => setViewport(fitViewport(store.get(), width, height)),
    zoomBy(factor, cx = width / 2, cy = height / 2) {
      const vp = viewport();
      const k = Math.min(200, Math.max(0.002, vp.k * factor));
      const ky = vp.ky * (k / vp.k);
      setViewport({ x: vp.x + cx / vp.k - cx / k, y: vp.y + cy / vp.ky - cy / ky, k, ky });
    },
    panBy(dx, dy) {
      const vp = viewport();
      setViewport({ x: vp.x - dx / vp.k, y: vp.y - dy / vp.ky, k: vp.k, ky: vp.ky });
    },
    size: () => ({ width, height }),
    clientPosition(i) {
      const s = store.get();
      const vp = viewport();
      const wx = s.view.layout.x[i];
      const wy = s.view.layout.y[i];
      if (wx === undefined || wy === undefined || Number.isNaN(wx)) return null;
      const rect = layers.hover.canvas.getBoundingClientRect();
      return { x: rect.left + (wx - vp.x) * vp.k, y: rect.top + (wy - vp.y) * vp.ky };
    },
    composite() {
      scheduler.flush();
      const out = document.createElement("canvas");
      out.width = layers.base.canvas.width;
      out.height = layers.base.canvas.height;
      const ctx = out.getContext("2d")!;
      ctx.fillStyle = "#fbfbf8";
      ctx.fillRect(0, 0, out.width, out.height);
      for (const { canvas } of [layers.focus, layers.base, layers.hover]) ctx.drawImage(canvas, 0, 0);
      return out;
    },
  };

  fitButton.addEventListener("click", () => handle.fit());

  // Pointer: hover via the grid index, drag to pan, click to select, Ctrl/Cmd-click to pin.
  const target = layers.hover.canvas;
  let drag: { x: number; y: number; vp: Viewport; moved: boolean } | null = null;
  const hitTest = (clientX: number, clientY: number): number => {
    const t0 = performance.now();
    const rect = target.getBoundingClientRect();
    const vp = viewport();
    const sx = clientX - rect.left;
    const sy = clientY - rect.top;
    const radius = Math.max(nodeRadius(vp.k) + 3, 7) / vp.k;
    const hit = nearest(viewGrid(store.get().view), vp.x + sx / vp.k, vp.y + sy / vp.ky, radius, vp.ky / vp.k);
    if (hitTestMs.length > 2000) hitTestMs.shift();
    hitTestMs.push(performance.now() - t0);
    return hit;
  };
  target.addEventListener("pointerdown", (event) => {
    if (event.button !== 0) return;
    drag = { x: event.clientX, y: event.clientY, vp: viewport(), moved: false };
    target.setPointerCapture(event.pointerId);
  });
  target.addEventListener("pointermove", (event) => {
    const rect = target.getBoundingClientRect();
    pointer = { x: event.clientX - rect.left, y: event.clientY - rect.top };
    pointerInside = true;
    if (drag) {
      const dx = event.clientX - drag.x;
      const dy = event.clientY - drag.y;
      if (drag.moved || Math.abs(dx) + Math.abs(dy) > 4) {
        drag.moved = true;
        setViewport({ x: drag.vp.x - dx / drag.vp.k, y: drag.vp.y - dy / drag.vp.ky, k: drag.vp.k, ky: drag.vp.ky });
        return;
      }
    }
    store.set({ hovered: hitTest(event.clientX, event.clientY) });
  });
  target.addEventListener("pointerleave", () => {
    pointerInside = false;
    store.set({ hovered: -1 });
  });
  target.addEventListener("pointerup", (event) => {
    const wasDrag = drag?.moved ?? false;
    drag = null;
    if (wasDrag) return;
    const hit = hitTest(event.clientX, event.clientY);
    element.focus({ preventScroll: true });
    element.dispatchEvent(new CustomEvent("node-click", { detail: { node: hit, event }, bubbles: true }));
    if (hit < 0) {
      if (!event.ctrlKey && !event.metaKey) select(store, -1);
      return;
    }
    if (element.dataset["grouping"] === "1") return; // g held: the page adds it to the group
    if (event.ctrlKey || event.metaKey) togglePin(store, hit);
    else select(store, hit === store.get().selected ? -1 : hit);
  });
  target.addEventListener(
    "wheel",
    (event) => {
      event.preventDefault();
      const rect = target.getBoundingClientRect();
      const factor = Math.exp(-event.deltaY * (event.deltaMode === 1 ? 0.05 : 0.0015));
      handle.zoomBy(factor, event.clientX - rect.left, event.clientY - rect.top);
    },
    { passive: false },
  );
  return handle;
}
