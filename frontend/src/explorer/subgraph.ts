// The subgraph: pinned nodes (and supernodes grouping them) laid out by layer and position, which
// you can drag; edges between units are aggregated. g+click (or the buttons) groups nodes; a
// double-click renames a group or labels a node, inline, as plain text. Drawn as SVG: it is small
// (pinned nodes only) and exports as it is.

import { featureKey, Kind } from "./graph";
import { nodeName, select, setLabel, togglePin, type ExplorerState, type ExplorerStore } from "./state";
import { COLORS, formatNumber, nodeFill } from "./style";
import { placeLabels, routeEdge, textBox, type Box, type Point } from "./subgraphRoutes";
import { aggregate, groupNodes, ungroup, type Aggregate } from "./supernodes";

const SVG = "http://www.w3.org/2000/svg";
const PAD = 40;
const LABEL_CHARS = 22;
const WEIGHT_LABELS = 8;
const ROW_CHAR_PX = 5.6; // the 10 px row names
const ARROW_POS = "sg-arrow-pos";
const ARROW_NEG = "sg-arrow-neg";
// A white outline under the text, for the edges that cannot avoid a label (./subgraphRoutes.ts).
const HALO = { "paint-order": "stroke", stroke: "#fff", "stroke-width": 3, "stroke-linejoin": "round" };

/** Arrowheads in the edges' two colours (SVG markers, so an export keeps them). */
function defs(): SVGDefsElement {
  const box = svgEl("defs", {});
  for (const [id, [r, g, b]] of [[ARROW_POS, COLORS.positive], [ARROW_NEG, COLORS.negative]] as const) {
    const marker = svgEl("marker", { id, viewBox: "0 0 10 10", refX: 8, refY: 5, markerWidth: 9, markerHeight: 9, orient: "auto", markerUnits: "userSpaceOnUse" });
    marker.appendChild(svgEl("path", { d: "M0,0 L10,5 L0,10 z", fill: `rgb(${r},${g},${b})` }));
    box.appendChild(marker);
  }
  return box;
}


/**
 * Layered start positions: rows are the layers the units occupy, columns the prompt positions they
 * occupy (only those, so a few pins spread over the panel), then units sharing a row are pushed
 * apart and the whole picture is scaled back into the panel.
 */
export function layeredPositions(s: ExplorerState, agg: Aggregate, width: number, height: number): Point[] {
  const g = s.graph;
  const mean = agg.units.map((unit) => {
    let row = 0;
    let ctx = 0;
    for (const i of unit.members) {
      row += g.row[i]!;
      ctx += g.ctx[i]!;
    }
    return { row: row / unit.members.length, ctx: ctx / unit.members.length };
  });
  const rows = [...new Set(mean.map((m) => m.row))].sort((a, b) => a - b);
  const ctxs = [...new Set(mean.map((m) => m.ctx))].sort((a, b) => a - b);
  const pts = mean.map((m) => ({
    x: PAD + ((ctxs.indexOf(m.ctx) + 0.5) / ctxs.length) * (width - 2 * PAD),
    y: rows.length > 1 ? height - PAD - (rows.indexOf(m.row) / (rows.length - 1)) * (height - 2 * PAD) : height / 2,
  }));
  const minGap = 120;
  for (let pass = 0; pass < 40; pass++) {
    let moved = false;
    for (let a = 0; a < pts.length; a++) {
      for (let b = a + 1; b < pts.length; b++) {
        const pa = pts[a]!;
        const pb = pts[b]!;
        if (Math.abs(pa.y - pb.y) > 30) continue;
        const dx = pb.x - pa.x;
        if (Math.abs(dx) >= minGap) continue;
        const push = (minGap - Math.abs(dx)) / 2 + 0.5;
        const dir = dx > 0 || (dx === 0 && a < b) ? 1 : -1;
        pa.x -= dir * push;
        pb.x += dir * push;
        moved = true;
      }
    }
    if (!moved) break;
  }
  // Fit horizontally: shift into the panel, or scale down when the rows got too wide.
  const xs = pts.map((p) => p.x);
  const lo = Math.min(...xs);
  const hi = Math.max(...xs);
  const room = width - 2 * PAD - 60;
  const scale = hi - lo > room ? room / (hi - lo) : 1;
  const offset = PAD + 30 + (room - (hi - lo) * scale) / 2;
  for (const p of pts) {
    p.x = offset + (p.x - lo) * scale;
    p.y = Math.min(height - 24, Math.max(16, p.y));
  }
  return pts;
}

/** The point `gap` from `from` on the way to `to`. */
function toward(from: Point, to: Point, gap: number): Point {
  const length = Math.hypot(to.x - from.x, to.y - from.y) || 1;
  return { x: from.x + ((to.x - from.x) / length) * gap, y: from.y + ((to.y - from.y) / length) * gap };
}

function svgEl<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>): SVGElementTagNameMap[K] {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

export interface SubgraphHandle {
  svg: SVGSVGElement;
  bar: HTMLElement; // its buttons; other panels add theirs (./suggestPanel.ts)
}

export function setUpSubgraph(element: HTMLElement, store: ExplorerStore): SubgraphHandle {
  element.classList.add("subgraph");
  const bar = document.createElement("div");
  bar.className = "subgraph-bar";
  const hint = document.createElement("span");
  hint.className = "muted";
  const groupButton = document.createElement("button");
  groupButton.type = "button";
  groupButton.textContent = "Group";
  groupButton.title = "Group the nodes picked with g+click (or all selected pins)";
  const ungroupButton = document.createElement("button");
  ungroupButton.type = "button";
  ungroupButton.textContent = "Ungroup";
  const clearButton = document.createElement("button");
  clearButton.type = "button";
  clearButton.textContent = "Clear pins";
  const relayoutButton = document.createElement("button");
  relayoutButton.type = "button";
  relayoutButton.textContent = "Re-layout";
  bar.append(hint, groupButton, ungroupButton, relayoutButton, clearButton);
  const stage = document.createElement("div");
  stage.className = "subgraph-stage";
  const svg = svgEl("svg", { class: "subgraph-svg", xmlns: SVG });
  stage.appendChild(svg);
  element.append(bar, stage);

  const positions = new Map<string, Point>(); // by unit key, as last drawn
  const dragged = new Set<string>(); // units the user moved: they keep their place until Re-layout
  let agg: Aggregate | null = null;
  let editing: HTMLInputElement | null = null;

  const unitIndexOfSelected = (s: ExplorerState): number => (s.selected >= 0 && agg ? (agg.unitOf.get(s.selected) ?? -1) : -1);

  const render = (): void => {
    const s = store.get();
    const width = Math.max(stage.clientWidth, 200);
    const height = Math.max(stage.clientHeight, 160);
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.setAttribute("width", String(width));
    svg.setAttribute("height", String(height));
    agg = aggregate(s.graph, s.pinned, s.groups);
    const start = layeredPositions(s, agg, width, height);
    // Units the user dragged stay where they were put; the others follow the layout.
    const pts = agg.units.map((unit, u) => {
      const p = (dragged.has(unit.key) && positions.get(unit.key)) || start[u]!;
      positions.set(unit.key, p);
      return p;
    });
    // Alternate labels above and below along each row so neighbours' labels do not collide.
    const labelAbove = new Set<number>();
    const byRow = new Map<number, number[]>();
    pts.forEach((p, u) => {
      const row = Math.round(p.y / 20);
      byRow.set(row, [...(byRow.get(row) ?? []), u]);
    });
    for (const units of byRow.values()) {
      units.sort((a, b) => pts[a]!.x - pts[b]!.x);
      units.forEach((u, k) => {
        if (k % 2 === 1) labelAbove.add(u);
      });
    }
    hint.textContent = s.pinned.length
      ? `${s.pinned.length} pinned · ${s.groups.length} groups${s.grouping.length ? ` · ${s.grouping.length} picked` : ""}`
      : "Pin nodes (the Pin buttons, or Ctrl/Cmd-click) to see them here";
    groupButton.disabled = s.grouping.length < 2;
    ungroupButton.disabled = !(unitIndexOfSelected(s) >= 0 && agg.units[unitIndexOfSelected(s)]!.group >= 0);
    clearButton.disabled = s.pinned.length === 0;

    const children: SVGElement[] = [defs()];
    // Rows are layers: name them at the left edge, so the layout reads as one.
    const rowNames = new Map<number, string>();
    agg.units.forEach((unit, u) => {
      if (dragged.has(unit.key)) return;
      const row = s.graph.row[unit.members[0]!]!;
      rowNames.set(Math.round(pts[u]!.y), row === 0 ? "Emb" : row === s.graph.nLayers + 1 ? "Logit" : `L${row - 1}`);
    });
    const avoid: Box[] = [];
    for (const [y, name] of rowNames) {
      const text = svgEl("text", { x: 4, y: y + 4, class: "sg-row", ...HALO });
      text.textContent = name;
      children.push(text);
      avoid.push(textBox(4, y + 4, name.length, "start", ROW_CHAR_PX));
    }
    // Labels first, on the side of their node the fewest edges cross; then edges around them.
    const names = agg.units.map((unit) => {
      const name = unit.group >= 0 ? s.groups[unit.group]!.name : nodeName(s, unit.members[0]!);
      return { name, shown: name.length > LABEL_CHARS ? `${name.slice(0, LABEL_CHARS - 1)}…` : name };
    });
    const radius = agg.units.map((unit) => (unit.group >= 0 ? 12 : 8));
    const places = placeLabels(pts, names.map((n) => n.shown.length), radius, agg.edges.map((e) => [e.from, e.to] as [number, number]), labelAbove);
    places.forEach((place, u) => avoid.push(textBox(pts[u]!.x + place.dx, pts[u]!.y + place.dy, names[u]!.shown.length, place.anchor)));
    const maxW = Math.max(...agg.edges.map((e) => Math.abs(e.weight)), 1e-9);
    // The strongest edges carry their weight; all have it in their tooltip.
    const labelled = new Set([...agg.edges].sort((a, b) => Math.abs(b.weight) - Math.abs(a.weight)).slice(0, WEIGHT_LABELS));
    const weights: SVGElement[] = [];
    for (const edge of agg.edges) {
      const a = pts[edge.from]!;
      const b = pts[edge.to]!;
      const [r, g, bl] = edge.weight >= 0 ? COLORS.positive : COLORS.negative;
      // From the edge of one shape to the edge of the other, so the arrowhead is seen.
      const startGap = agg.units[edge.from]!.group >= 0 ? 14 : 8;
      const endGap = (agg.units[edge.to]!.group >= 0 ? 14 : 8) + 2;
      const length = Math.hypot(b.x - a.x, b.y - a.y) || 1;
      if (length <= startGap + endGap) continue;
      const control = routeEdge(toward(a, b, startGap), toward(b, a, endGap), avoid);
      const start = toward(a, control ?? b, startGap);
      const end = toward(b, control ?? a, endGap);
      const bend = control ? `Q${control.x.toFixed(1)},${control.y.toFixed(1)} ` : "L";
      const line = svgEl("path", {
        d: `M${start.x.toFixed(1)},${start.y.toFixed(1)} ${bend}${end.x.toFixed(1)},${end.y.toFixed(1)}`,
        fill: "none",
        stroke: `rgba(${r},${g},${bl},0.7)`,
        "stroke-width": (0.8 + 5 * Math.sqrt(Math.abs(edge.weight) / maxW)).toFixed(2),
        "marker-end": `url(#${edge.weight >= 0 ? ARROW_POS : ARROW_NEG})`,
        class: "sg-edge",
      });
      const title = svgEl("title", {});
      title.textContent = `${formatNumber(edge.weight)} (${edge.count} edge${edge.count === 1 ? "" : "s"})`;
      line.appendChild(title);
      children.push(line);
      if (labelled.has(edge)) {
        // At the middle of the curve (half way from the chord's middle to its control point).
        const c = control ?? { x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 };
        const mid = { x: (a.x + b.x) / 4 + c.x / 2, y: (a.y + b.y) / 4 + c.y / 2 };
        const weight = svgEl("text", { x: mid.x, y: mid.y + 3, "text-anchor": "middle", class: "sg-weight", fill: `rgb(${r},${g},${bl})`, ...HALO });
        weight.textContent = formatNumber(edge.weight);
        weights.push(weight);
      }
    }
    const selectedUnit = unitIndexOfSelected(s);
    agg.units.forEach((unit, u) => {
      const p = pts[u]!;
      const first = unit.members[0]!;
      const node = s.graph.nodes[first]!;
      const isGroup = unit.group >= 0;
      const group = svgEl("g", { class: `sg-unit${u === selectedUnit ? " is-selected" : ""}${unit.members.some((m) => s.grouping.includes(m)) ? " is-picked" : ""}`, transform: `translate(${p.x},${p.y})` });
      group.dataset["unit"] = String(u);
      const shape = isGroup
        ? svgEl("rect", { x: -16, y: -10, width: 32, height: 20, rx: 6, fill: "#e8f0fa", stroke: COLORS.pinned, "stroke-width": 1.5 })
        : node.kind === Kind.Feature
          ? svgEl("circle", { r: 7, fill: nodeFill(node.kind), stroke: COLORS.featureStroke })
          : svgEl("rect", { x: -7, y: -7, width: 14, height: 14, fill: nodeFill(node.kind) });
      const place = places[u]!;
      const label = svgEl("text", { x: place.dx, y: place.dy, "text-anchor": place.anchor, class: "sg-label", ...HALO });
      const { name, shown } = names[u]!;
      label.textContent = shown;
      const tip = svgEl("title", {});
      tip.textContent = isGroup
        ? `${name}: ${unit.members.map((m) => featureKey(s.graph.nodes[m]!)).join(", ")}`
        : `${name} (${featureKey(node)} @${node.ctx})`;
      group.append(shape, label, tip);
      if (isGroup) {
        const count = svgEl("text", { y: 4, "text-anchor": "middle", class: "sg-count" });
        count.textContent = String(unit.members.length);
        group.appendChild(count);
      }
      children.push(group);
    });
    // Weights and labels above every edge (a white halo each), so no edge runs through them.
    svg.replaceChildren(...children, ...weights);
  };

  const startEdit = (u: number): void => {
    const s = store.get();
    if (!agg) return;
    const unit = agg.units[u];
    if (!unit) return;
    const p = positions.get(unit.key)!;
    editing?.remove();
    const input = document.createElement("input");
    input.className = "sg-edit";
    input.maxLength = 200;
    input.value = unit.group >= 0 ? s.groups[unit.group]!.name : (s.labels.get(unit.members[0]!) ?? "");
    input.placeholder = unit.group >= 0 ? "group name" : "label";
    input.style.left = `${p.x - 80}px`;
    input.style.top = `${p.y + 8}px`;
    stage.appendChild(input);
    editing = input;
    input.focus();
    input.select();
    const commit = (): void => {
      if (editing !== input) return;
      editing = null;
      input.remove();
      const now = store.get();
      if (unit.group >= 0) {
        const groups = now.groups.map((g, k) => (k === unit.group ? { ...g, name: input.value.trim().slice(0, 200) || g.name } : g));
        store.set({ groups });
      } else {
        setLabel(store, unit.members[0]!, input.value);
      }
    };
    input.addEventListener("keydown", (event) => {
      event.stopPropagation();
      if (event.key === "Enter") commit();
      if (event.key === "Escape") {
        editing = null;
        input.remove();
      }
    });
    input.addEventListener("blur", commit);
  };

  // Drag units; click selects; Ctrl/Cmd-click unpins; g+click picks for grouping.
  let drag: { u: number; key: string; dx: number; dy: number; moved: boolean } | null = null;
  const localPoint = (event: PointerEvent | MouseEvent): Point => {
    const rect = svg.getBoundingClientRect();
    return { x: event.clientX - rect.left, y: event.clientY - rect.top };
  };
  svg.addEventListener("pointerdown", (event) => {
    const target = (event.target as Element).closest<SVGGElement>("g.sg-unit");
    if (!target || !agg) return;
    const u = Number(target.dataset["unit"]);
    const unit = agg.units[u]!;
    const p = positions.get(unit.key)!;
    const q = localPoint(event);
    drag = { u, key: unit.key, dx: p.x - q.x, dy: p.y - q.y, moved: false };
    svg.setPointerCapture(event.pointerId);
  });
  svg.addEventListener("pointermove", (event) => {
    if (!drag) return;
    const q = localPoint(event);
    const p = positions.get(drag.key)!;
    const next = { x: q.x + drag.dx, y: q.y + drag.dy };
    if (!drag.moved && Math.abs(next.x - p.x) + Math.abs(next.y - p.y) < 3) return;
    drag.moved = true;
    dragged.add(drag.key);
    positions.set(drag.key, next);
    const node = svg.querySelector<SVGGElement>(`g.sg-unit[data-unit="${drag.u}"]`);
    node?.setAttribute("transform", `translate(${next.x},${next.y})`);
    // Re-render edges cheaply: a full render is small (pinned nodes only).
    render();
  });
  // Double-click is detected here: a click re-renders the SVG, so the browser's dblclick would
  // land on a replaced element.
  let lastClick = { key: "", at: 0 };
  svg.addEventListener("pointerup", (event) => {
    const d = drag;
    drag = null;
    if (!d || d.moved || !agg) return;
    const unit = agg.units[d.u]!;
    const now = performance.now();
    if (lastClick.key === unit.key && now - lastClick.at < 450) {
      lastClick = { key: "", at: 0 };
      startEdit(d.u);
      return;
    }
    lastClick = { key: unit.key, at: now };
    const s = store.get();
    if (element.dataset["grouping"] === "1" || event.shiftKey) {
      const picked = new Set(s.grouping);
      const all = unit.members.every((m) => picked.has(m));
      for (const m of unit.members) {
        if (all) picked.delete(m);
        else picked.add(m);
      }
      store.set({ grouping: [...picked] });
    } else if (event.ctrlKey || event.metaKey) {
      for (const m of unit.members) togglePin(store, m);
    } else {
      select(store, unit.members[0]!);
    }
  });

  groupButton.addEventListener("click", () => {
    const s = store.get();
    if (s.grouping.length < 2) return;
    const name = `group ${s.groups.length + 1}`;
    store.set({ groups: groupNodes(s.groups, s.grouping, name), grouping: [] });
    // Open the name editor on the new group.
    const u = agg?.units.findIndex((unit) => unit.group === store.get().groups.length - 1) ?? -1;
    if (u >= 0) startEdit(u);
  });
  ungroupButton.addEventListener("click", () => {
    const s = store.get();
    const u = unitIndexOfSelected(s);
    if (u < 0 || !agg) return;
    const unit = agg.units[u]!;
    if (unit.group >= 0) store.set({ groups: ungroup(s.groups, unit.group) });
  });
  clearButton.addEventListener("click", () => store.set({ pinned: [], groups: [], grouping: [] }));
  relayoutButton.addEventListener("click", () => {
    dragged.clear();
    render();
  });

  store.watch(["pinned", "groups", "labels", "selected", "grouping", "explanations", "showNames"], render);
  new ResizeObserver(() => render()).observe(stage);
  render();
  return { svg, bar };
}
