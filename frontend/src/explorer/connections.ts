// Node connections: the selected node's inputs and outputs, positive then negative, each sorted
// by weight. Lists are virtualised (fixed row height, only the rows in view exist in the DOM), so
// a node with thousands of edges scrolls smoothly.

import { featureKey, Kind, type Graph } from "./graph";
import { nodeActions, runNodeAction } from "./nodeActions";
import { nodeName, select, togglePin, type ExplorerState, type ExplorerStore } from "./state";
import { formatNumber } from "./style";

const ROW = 24;
const OVERSCAN = 6;

export type Row = { header: string } | { edge: number; other: number; weight: number };

/** Rows of one side (inputs or outputs) among visible nodes: positives desc, then negatives. */
export function connectionRows(s: ExplorerState, node: number, side: "input" | "output"): Row[] {
  const g: Graph = s.graph;
  const start = side === "input" ? g.inStart : g.outStart;
  const edges = side === "input" ? g.inEdges : g.outEdges;
  const positive: Row[] = [];
  const negative: Row[] = [];
  for (let j = start[node]!; j < start[node + 1]!; j++) {
    const e = edges[j]!;
    const other = side === "input" ? g.edgeSrc[e]! : g.edgeDst[e]!;
    if (s.view.visible[other] !== 1) continue;
    const w = g.edgeWeight[e]!;
    (w >= 0 ? positive : negative).push({ edge: e, other, weight: w });
  }
  // Segments are already sorted by |weight| descending, which is the order wanted within a sign.
  const rows: Row[] = [];
  if (positive.length) rows.push({ header: `Positive (${positive.length})` }, ...positive);
  if (negative.length) rows.push({ header: `Negative (${negative.length})` }, ...negative);
  return rows;
}

const GLYPH: Record<number, string> = {
  [Kind.Embedding]: "■",
  [Kind.Feature]: "●",
  [Kind.Error]: "▫",
  [Kind.Logit]: "◆",
};

interface VirtualList {
  set(rows: Row[]): void; // new rows, scrolled to the top
  refresh(): void; // the same rows, redrawn where they are (pins changed)
}

function virtualList(container: HTMLElement, store: ExplorerStore, featurePrefix: string): VirtualList {
  const viewport = document.createElement("div");
  viewport.className = "vlist";
  const spacer = document.createElement("div");
  spacer.className = "vlist-spacer";
  viewport.appendChild(spacer);
  container.appendChild(viewport);
  let rows: Row[] = [];
  let rendered = "";

  const render = (): void => {
    const first = Math.max(0, Math.floor(viewport.scrollTop / ROW) - OVERSCAN);
    const last = Math.min(rows.length, Math.ceil((viewport.scrollTop + viewport.clientHeight) / ROW) + OVERSCAN);
    const key = `${first}:${last}:${rows.length}`;
    if (key === rendered) return;
    rendered = key;
    const s = store.get();
    const children: HTMLElement[] = [];
    for (let k = first; k < last; k++) {
      const row = rows[k]!;
      const el = document.createElement("div");
      el.style.transform = `translateY(${k * ROW}px)`;
      if ("header" in row) {
        el.className = "vrow vrow-header";
        el.textContent = row.header;
      } else {
        const node = s.graph.nodes[row.other]!;
        el.className = `vrow${s.pinned.includes(row.other) ? " is-pinned" : ""}`;
        el.dataset["node"] = String(row.other);
        const glyph = document.createElement("span");
        glyph.className = `glyph kind-${node.kind}`;
        glyph.textContent = GLYPH[node.kind] ?? "●";
        const label = document.createElement("span");
        label.className = "vrow-label";
        label.textContent = nodeName(s, row.other);
        label.title = label.textContent;
        const where = document.createElement("span");
        where.className = "vrow-where";
        where.textContent = `${featureKey(node)} @${node.ctx}`;
        const weight = document.createElement("span");
        weight.className = `vrow-weight ${row.weight >= 0 ? "pos" : "neg"}`;
        weight.textContent = formatNumber(row.weight);
        el.append(glyph, label, where, weight, nodeActions(s, row.other, featurePrefix, true));
      }
      children.push(el);
    }
    spacer.style.height = `${rows.length * ROW}px`;
    spacer.replaceChildren(...children);
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
      inputs.list.set([]);
      outputs.list.set([]);
      inputs.heading.textContent = "Inputs";
      outputs.heading.textContent = "Outputs";
      return;
    }
    title.textContent = nodeName(s, i);
    const ins = connectionRows(s, i, "input");
    const outs = connectionRows(s, i, "output");
    inputs.heading.textContent = `Inputs (${ins.filter((r) => !("header" in r)).length})`;
    outputs.heading.textContent = `Outputs (${outs.filter((r) => !("header" in r)).length})`;
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
