// Export: the graph JSON (circuit-tracer/Neuronpedia schema) with the current pins, supernodes,
// labels and thresholds in qParams (labels in the nodes' clerp too); the visible link graph as SVG or PNG; the subgraph likewise.

import { edgeShare, Kind, type Graph } from "./graph";
import { edgePrefix, edgeVisible } from "./prune";
import { toUrlState, type ExplorerState } from "./state";
import { bucketStyle, edgeBucket, nodeFill, nodeRadius } from "./style";
import type { Viewport } from "./urlState";

/** The graph as a JSON document; `records` are the file's node records (graphSource.nodeRecords). */
export function exportGraphJson(s: ExplorerState, records: readonly unknown[]): Record<string, unknown> {
  const g: Graph = s.graph;
  const record = (i: number): Record<string, unknown> => records[g.nodeSource[i]!] as Record<string, unknown>;
  const url = toUrlState(s);
  const links = new Array<Record<string, unknown>>(g.nEdges);
  for (let e = 0; e < g.nEdges; e++) {
    links[e] = { source: g.nodes[g.edgeSrc[e]!]!.id, target: g.nodes[g.edgeDst[e]!]!.id, weight: g.edgeWeight[e]! };
  }
  return {
    metadata: g.metadata.raw,
    qParams: {
      ...g.qParams,
      pinnedIds: url.pinnedIds,
      supernodes: url.supernodes.map((sn) => [sn.name, ...sn.ids]),
      clerps: url.labels,
      linkType: url.linkType,
      clickedId: url.clickedId ?? "",
      pruningThreshold: url.pruningThreshold,
      densityThreshold: url.densityThreshold,
      edgeThreshold: url.edgeThreshold,
    },
    // Labels also go into the nodes' clerp, where every tool that reads the schema looks (the
    // server's subgraph export does the same).
    nodes: g.nodes.map((_, i) => (s.labels.has(i) ? { ...record(i), clerp: s.labels.get(i) } : record(i))),
    links,
  };
}

function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** The link graph as it is on screen (visible nodes in view, focus edges), as an SVG document. */
export function linkGraphSvg(s: ExplorerState, vp: Viewport, width: number, height: number): string {
  const g = s.graph;
  const { x, y, rowY, columnStart, columnWidth } = s.view.layout;
  const sx = (i: number): number => (x[i]! - vp.x) * vp.k;
  const sy = (i: number): number => (y[i]! - vp.y) * vp.ky;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="#fbfbf8"/>`,
  ];
  for (let r = 0; r < rowY.length; r++) {
    const yy = ((rowY[r]! - vp.y) * vp.ky).toFixed(1);
    parts.push(`<line x1="0" x2="${width}" y1="${yy}" y2="${yy}" stroke="#e6e7e2"/>`);
  }
  const tokenY = ((rowY[0]! - vp.y) * vp.ky + 22).toFixed(1);
  for (let c = 0; c < columnStart.length; c++) {
    const cx = (columnStart[c]! + columnWidth[c]! / 2 - vp.x) * vp.k;
    if (cx < -50 || cx > width + 50) continue;
    parts.push(`<text x="${cx.toFixed(1)}" y="${tokenY}" text-anchor="middle">${escapeXml(g.metadata.promptTokens[c] ?? "")}</text>`);
  }
  const focus = new Set(s.pinned);
  if (s.selected >= 0) focus.add(s.selected);
  const prefix = edgePrefix(g, s.thresholds.edge);
  for (const i of focus) {
    const sides: [Int32Array, Int32Array][] = [];
    if (s.linkType !== "output") sides.push([g.inStart, g.inEdges]);
    if (s.linkType !== "input") sides.push([g.outStart, g.outEdges]);
    for (const [start, edges] of sides) {
      const from = start[i]!;
      const to = Math.min(start[i + 1]!, from + 2000);
      const maxAbs = from < to ? Math.abs(g.edgeWeight[edges[from]!]!) || 1 : 1;
      for (let j = from; j < to; j++) {
        const e = edges[j]!;
        if (!edgeVisible(g, e, s.view.visible, prefix)) continue;
        const w = g.edgeWeight[e]!;
        const style = bucketStyle(edgeBucket(w, edgeShare(g, e), Math.abs(w) / maxAbs));
        const a = g.edgeSrc[e]!;
        const b = g.edgeDst[e]!;
        parts.push(
          `<line x1="${sx(a).toFixed(1)}" y1="${sy(a).toFixed(1)}" x2="${sx(b).toFixed(1)}" y2="${sy(b).toFixed(1)}" stroke="${style.color}" stroke-width="${style.width}"/>`,
        );
      }
    }
  }
  const r = nodeRadius(vp.k);
  for (let i = 0; i < g.n; i++) {
    if (s.view.visible[i] !== 1) continue;
    const px = sx(i);
    const py = sy(i);
    if (px < -10 || px > width + 10 || py < -10 || py > height + 10) continue;
    const fill = nodeFill(g.kind[i] as Kind);
    if (g.kind[i] === Kind.Feature) parts.push(`<circle cx="${px.toFixed(1)}" cy="${py.toFixed(1)}" r="${r.toFixed(1)}" fill="${fill}"/>`);
    else parts.push(`<rect x="${(px - r).toFixed(1)}" y="${(py - r).toFixed(1)}" width="${(2 * r).toFixed(1)}" height="${(2 * r).toFixed(1)}" fill="${fill}"/>`);
    if (g.kind[i] === Kind.Logit) {
      const node = g.nodes[i]!;
      parts.push(`<text x="${px.toFixed(1)}" y="${(py - r - 6).toFixed(1)}" transform="rotate(-36 ${px.toFixed(1)} ${(py - r - 6).toFixed(1)})">${escapeXml(node.token)}</text>`);
    }
  }
  parts.push("</svg>");
  return parts.join("\n");
}

/** A standalone copy of the subgraph SVG with its styles inlined. */
export function subgraphSvg(svg: SVGSVGElement): string {
  const copy = svg.cloneNode(true) as SVGSVGElement;
  copy.setAttribute("xmlns", "http://www.w3.org/2000/svg");
  const style = document.createElementNS("http://www.w3.org/2000/svg", "style");
  style.textContent = ".sg-label{font:11px system-ui,sans-serif;fill:#1d232b}.sg-count{font:bold 11px system-ui,sans-serif;fill:#2c6bb3}.sg-row{font:10px system-ui,sans-serif;fill:#6b7785}.sg-weight{font:10px system-ui,sans-serif}";
  copy.insertBefore(style, copy.firstChild);
  const bg = document.createElementNS("http://www.w3.org/2000/svg", "rect");
  bg.setAttribute("width", "100%");
  bg.setAttribute("height", "100%");
  bg.setAttribute("fill", "#fbfbf8");
  copy.insertBefore(bg, style.nextSibling);
  return new XMLSerializer().serializeToString(copy);
}

export function download(name: string, blob: Blob): void {
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export async function svgToPng(svgText: string, width: number, height: number): Promise<Blob | null> {
  const image = new Image();
  const url = URL.createObjectURL(new Blob([svgText], { type: "image/svg+xml" }));
  try {
    await new Promise<void>((resolve, reject) => {
      image.onload = () => resolve();
      image.onerror = () => reject(new Error("could not render the SVG"));
      image.src = url;
    });
    const canvas = document.createElement("canvas");
    const scale = window.devicePixelRatio || 1;
    canvas.width = Math.ceil(width * scale);
    canvas.height = Math.ceil(height * scale);
    const ctx = canvas.getContext("2d")!;
    ctx.scale(scale, scale);
    ctx.drawImage(image, 0, 0, width, height);
    return await new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
  } finally {
    URL.revokeObjectURL(url);
  }
}
