// Node connections: the selected node's inputs and outputs, positive then negative, each sorted
// by weight. Lists are virtualised (fixed row height, only the rows in view exist in the DOM), so
// a node with thousands of edges scrolls smoothly.

import { featureKey, Kind, type Graph } from "./graph";
import { nodeActions, retargetNodeActions, runNodeAction, syncNodeActions } from "./nodeActions";
import { nodeName, select, togglePin, type ExplorerState, type ExplorerStore } from "./state";
import { formatNumber } from "./style";

const ROW = 24;
const OVERSCAN = 6;

export type Row = { header: string } | { edge: number; other: number; weight: number };

/**
 * One side's rows (inputs or outputs) among visible nodes: a header, the positive edges, a
 * header, the negative ones, each by |weight| descending; a sign with no edges has no header.
 * Kept as typed arrays, with a row object made only for the rows drawn (rowAt): a slider step
 * redoes the rows of the selected node, which on a big graph has tens of thousands of edges.
 */
export interface ConnectionRows {
  edges: Int32Array; // the positive edges, then the negative ones
  others: Int32Array; // each edge's other end
  positive: number; // how many of them are positive
  length: number; // rows, headers included
}

let scratch = new Int32Array(0); // the negative edges and their other ends, while a side is read

export function connectionRows(s: ExplorerState, node: number, side: "input" | "output"): ConnectionRows {
  const g: Graph = s.graph;
  const start = side === "input" ? g.inStart : g.outStart;
  const csr = side === "input" ? g.inEdges : g.outEdges;
  const ends = side === "input" ? g.inSrc : g.outDst;
  const visible = s.view.visible;
  const from = start[node]!;
  const size = start[node + 1]! - from;
  const edges = new Int32Array(size);
  const others = new Int32Array(size);
  if (scratch.length < 2 * size) scratch = new Int32Array(2 * size);
  let positive = 0;
  let negative = 0;
  for (let j = from; j < from + size; j++) {
    const other = ends[j]!;
    if (visible[other] !== 1) continue;
    const e = csr[j]!;
    if (g.edgeWeight[e]! >= 0) {
      edges[positive] = e;
      others[positive++] = other;
    } else {
      scratch[2 * negative] = e;
      scratch[2 * negative++ + 1] = other;
    }
  }
  // Segments are already sorted by |weight| descending, which is the order wanted within a sign.
  for (let k = 0; k < negative; k++) {
    edges[positive + k] = scratch[2 * k]!;
    others[positive + k] = scratch[2 * k + 1]!;
  }
  const kept = positive + negative;
  return {
    edges: edges.subarray(0, kept),
    others: others.subarray(0, kept),
    positive,
    length: kept + (positive > 0 ? 1 : 0) + (negative > 0 ? 1 : 0),
  };
}

/** Row k of these rows. */
export function rowAt(g: Graph, rows: ConnectionRows, k: number): Row {
  const { positive } = rows;
  const negative = rows.edges.length - positive;
  let at = k;
  if (positive > 0) {
    if (at === 0) return { header: `Positive (${positive})` };
    at -= 1;
    if (at < positive) return { edge: rows.edges[at]!, other: rows.others[at]!, weight: g.edgeWeight[rows.edges[at]!]! };
    at -= positive;
  }
  if (at === 0) return { header: `Negative (${negative})` };
  at = positive + at - 1;
  return { edge: rows.edges[at]!, other: rows.others[at]!, weight: g.edgeWeight[rows.edges[at]!]! };
}

const NO_ROWS: ConnectionRows = { edges: new Int32Array(0), others: new Int32Array(0), positive: 0, length: 0 };

const GLYPH: Record<number, string> = {
  [Kind.Embedding]: "■",
  [Kind.Feature]: "●",
  [Kind.Error]: "▫",
  [Kind.Logit]: "◆",
};

interface VirtualList {
  set(rows: ConnectionRows): void; // new rows, scrolled to the top
  refresh(): void; // the same rows, redrawn where they are (pins changed)
}

/** A row's elements, made once and rewritten as the list scrolls: a scroll step over a long list
 * shows other rows in the same places, and making their elements anew each step (about 25 rows
 * of 10 elements, 60 steps over a 60,000-row list) left 46 MB of garbage in the tab's DOM heap. */
interface Slot {
  row: HTMLElement;
  parts: HTMLElement[]; // glyph, label, where, weight: an edge row's children before its actions
  actions: HTMLElement | null; // the node's buttons (./nodeActions.ts)
  node: number; // the row's other end; -1 for a header
}

function newSlot(): Slot {
  const row = document.createElement("div");
  const parts = ["glyph", "vrow-label", "vrow-where", "vrow-weight"].map((name) => {
    const span = document.createElement("span");
    span.className = name;
    return span;
  });
  return { row, parts, actions: null, node: -2 };
}

/** Sets an element's text: in its one text node, not a new one; only when it changes (a
 * same-valued write still lays the element out again). */
function setText(element: HTMLElement, text: string): void {
  const only = element.firstChild;
  if (only && only === element.lastChild && only.nodeType === Node.TEXT_NODE) {
    if ((only as Text).data !== text) (only as Text).data = text;
  } else {
    element.textContent = text;
  }
}

function fillSlot(slot: Slot, s: ExplorerState, row: Row, k: number, featurePrefix: string): void {
  slot.row.style.transform = `translateY(${k * ROW}px)`;
  if ("header" in row) {
    if (slot.node !== -1) {
      slot.row.className = "vrow vrow-header";
      delete slot.row.dataset["node"];
      slot.row.replaceChildren();
      slot.node = -1;
    }
    setText(slot.row, row.header);
    return;
  }
  const node = s.graph.nodes[row.other]!;
  const [glyph, label, where, weight] = slot.parts as [HTMLElement, HTMLElement, HTMLElement, HTMLElement];
  slot.row.className = `vrow${s.pinned.includes(row.other) ? " is-pinned" : ""}`;
  if (slot.node !== row.other) {
    slot.row.dataset["node"] = String(row.other);
    if (slot.actions) retargetNodeActions(slot.actions, s, row.other, featurePrefix);
    else slot.actions = nodeActions(s, row.other, featurePrefix, true);
    // From a header (or new): its children again.
    if (slot.node < 0) slot.row.replaceChildren(...slot.parts, slot.actions);
    slot.node = row.other;
  } else if (slot.actions) {
    syncNodeActions(slot.actions, s);
  }
  glyph.className = `glyph kind-${node.kind}`;
  setText(glyph, GLYPH[node.kind] ?? "●");
  const name = nodeName(s, row.other);
  setText(label, name);
  if (label.title !== name) label.title = name;
  setText(where, `${featureKey(node)} @${node.ctx}`);
  weight.className = `vrow-weight ${row.weight >= 0 ? "pos" : "neg"}`;
  setText(weight, formatNumber(row.weight));
}

function virtualList(container: HTMLElement, store: ExplorerStore, featurePrefix: string): VirtualList {
  const viewport = document.createElement("div");
  viewport.className = "vlist";
  const spacer = document.createElement("div");
  spacer.className = "vlist-spacer";
  viewport.appendChild(spacer);
  container.appendChild(viewport);
  let rows = NO_ROWS;
  let rendered = "";
  const slots: Slot[] = [];

  const render = (): void => {
    const first = Math.max(0, Math.floor(viewport.scrollTop / ROW) - OVERSCAN);
    const last = Math.min(rows.length, Math.ceil((viewport.scrollTop + viewport.clientHeight) / ROW) + OVERSCAN);
    const key = `${first}:${last}:${rows.length}`;
    if (key === rendered) return;
    rendered = key;
    const s = store.get();
    const count = Math.max(0, last - first);
    // Slot j stays the spacer's j-th child: moving an element would lay it out anew.
    while (slots.length < count) slots.push(newSlot());
    while (spacer.childElementCount > count) spacer.lastElementChild!.remove();
    for (let j = 0; j < count; j++) {
      const slot = slots[j]!;
      fillSlot(slot, s, rowAt(s.graph, rows, first + j), first + j, featurePrefix);
      if (j >= spacer.childElementCount) spacer.appendChild(slot.row);
    }
    spacer.style.height = `${rows.length * ROW}px`;
  };
  viewport.addEventListener("scroll", () => requestAnimationFrame(render), { passive: true });
  viewport.addEventListener("click", (event) => {
    if (runNodeAction(store, event)) return;
    const el = (event.target as HTMLElement).closest<HTMLElement>(".vrow[data-node]");
    if (!el) return;
    const i = Number(el.dataset["node"]);
    if (event.ctrlKey || event.metaKey) togglePin(store, i);
    else select(store, i);
  });
  viewport.addEventListener("mouseover", (event) => {
    const el = (event.target as HTMLElement).closest<HTMLElement>(".vrow[data-node]");
    if (el) store.set({ hovered: Number(el.dataset["node"]) });
  });
  viewport.addEventListener("mouseleave", () => store.set({ hovered: -1 }));
  return {
    set(next) {
      rows = next;
      rendered = "";
      viewport.scrollTop = 0;
      render();
    },
    refresh() {
      rendered = "";
      render();
    },
  };
}

export function setUpNodeConnections(element: HTMLElement, store: ExplorerStore, featurePrefix = ""): void {
  element.classList.add("connections");
  const title = document.createElement("div");
  title.className = "panel-title";
  const columns = document.createElement("div");
  columns.className = "connections-columns";
  const make = (name: string): { list: VirtualList; heading: HTMLElement } => {
    const column = document.createElement("section");
    column.className = "connections-column";
    const heading = document.createElement("h3");
    heading.textContent = name;
    column.appendChild(heading);
    columns.appendChild(column);
    return { list: virtualList(column, store, featurePrefix), heading };
  };
  const inputs = make("Inputs");
  const outputs = make("Outputs");
  element.append(title, columns);

  const update = (s: ExplorerState): void => {
    const i = s.selected;
    if (i < 0) {
      title.textContent = "Click a node to see its connections";
      inputs.list.set(NO_ROWS);
      outputs.list.set(NO_ROWS);
      inputs.heading.textContent = "Inputs";
      outputs.heading.textContent = "Outputs";
      return;
    }
    title.textContent = nodeName(s, i);
    const ins = connectionRows(s, i, "input");
    const outs = connectionRows(s, i, "output");
    inputs.heading.textContent = `Inputs (${ins.edges.length})`;
    outputs.heading.textContent = `Outputs (${outs.edges.length})`;
    inputs.list.set(ins);
    outputs.list.set(outs);
  };
  store.watch(["selected", "view", "labels", "explanations", "showNames"], update);
  store.watch(["pinned", "grouping"], () => {
    inputs.list.refresh();
    outputs.list.refresh();
  });
  update(store.get());
}
