// The toolbar: pruning sliders (node influence, edge weight, density) with visible counts,
// link type, fit, and the search box with its results.

import { el } from "../site/dom";
import { featureKey } from "./graph";
import { searchGraph } from "./search";
import { whenIdle } from "./scheduler";
import { knownEdgeCount, nodeName, select, togglePin, visibleEdgeCount, type ExplorerState, type ExplorerStore } from "./state";
import type { LinkType } from "./urlState";

function slider(name: string, label: string, min: number, max: number, step: number): { wrap: HTMLElement; input: HTMLInputElement; value: HTMLElement } {
  const wrap = el("label", "slider");
  const input = el("input");
  input.type = "range";
  input.name = name;
  input.min = String(min);
  input.max = String(max);
  input.step = String(step);
  const value = el("span", "slider-value");
  wrap.append(el("span", "slider-label", label), input, value);
  return { wrap, input, value };
}

export function setUpPruning(element: HTMLElement, store: ExplorerStore): void {
  element.classList.add("pruning");
  const node = slider("node-threshold", "Node influence", 0.05, 1, 0.01);
  node.wrap.title = "Keep the nodes that together hold this share of the influence on the logits";
  const edge = slider("edge-threshold", "Edge weight", 0.05, 1, 0.01);
  edge.wrap.title = "Keep the strongest edges that together hold this share of total |weight|";
  const density = slider("density-threshold", "Max density", -6, 0, 0.1);
  density.wrap.title = "Hide features that fire more often than this (log10 of activation density; needs feature data)";
  const counts = el("span", "counts");
  counts.setAttribute("data-testid", "counts");
  const linkType = el("select");
  linkType.name = "link-type";
  for (const [value, text] of [["both", "inputs + outputs"], ["input", "inputs"], ["output", "outputs"]] as const) {
    const option = el("option", "", text);
    option.value = value;
    linkType.appendChild(option);
  }
  const names = el("label", "names-toggle");
  names.title = "Name features by their best explanation (highest score); off: by their ids";
  const namesBox = el("input");
  namesBox.type = "checkbox";
  namesBox.name = "show-names";
  names.append(namesBox, " Names");
  namesBox.addEventListener("change", () => store.set({ showNames: namesBox.checked }));
  element.append(node.wrap, edge.wrap, density.wrap, linkType, names, counts);

  // A drag fires input events faster than frames: the first is applied at once, later ones in
  // the same frame collapse into one update at the next frame.
  let pending: (() => void) | null = null;
  let cooling = false;
  const apply = (update: () => void): void => {
    if (cooling) {
      pending = update;
      return;
    }
    update();
    cooling = true;
    requestAnimationFrame(() => {
      cooling = false;
      const next = pending;
      pending = null;
      if (next) apply(next);
    });
  };
  const setThreshold = (patch: Partial<ExplorerState["thresholds"]>) => () =>
    store.set({ thresholds: { ...store.get().thresholds, ...patch } });
  node.input.addEventListener("input", () => apply(setThreshold({ node: Number(node.input.value) })));
  edge.input.addEventListener("input", () => apply(setThreshold({ edge: Number(edge.input.value) })));
  density.input.addEventListener("input", () => {
    const v = Number(density.input.value);
    apply(setThreshold({ density: v >= 0 ? 1 : 10 ** v }));
  });
  linkType.addEventListener("change", () => store.set({ linkType: linkType.value as LinkType }));

  const update = (s: ExplorerState): void => {
    const t = s.thresholds;
    node.input.value = String(t.node);
    node.value.textContent = t.node.toFixed(2);
    edge.input.value = String(t.edge);
    edge.value.textContent = t.edge.toFixed(2);
    density.input.value = String(t.density >= 1 ? 0 : Math.log10(Math.max(t.density, 1e-6)));
    density.value.textContent = t.density >= 1 ? "all" : t.density.toExponential(0);
    density.input.disabled = s.density === null && t.density >= 1;
    linkType.value = s.linkType;
    namesBox.checked = s.showNames;
    showCounts(s);
  };
  // The edges are counted when the page is idle (see visibleEdgeCount): until then, "…".
  const showCounts = (s: ExplorerState): void => {
    const edges = knownEdgeCount(s.view);
    counts.textContent = `${s.view.nVisible.toLocaleString()} / ${s.graph.n.toLocaleString()} nodes · ${edges?.toLocaleString() ?? "…"} / ${s.graph.nEdges.toLocaleString()} edges${
      s.graph.partial ? ` loaded of ${s.graph.linksTotal.toLocaleString()}` : ""
    }`;
    if (edges !== undefined) return;
    whenIdle(() => {
      const now = store.get();
      if (now.view !== s.view || now.graph !== s.graph) return; // a later view asks for its own
      visibleEdgeCount(now.graph, now.view);
      showCounts(now);
    }, 250);
  };
  store.watch(["thresholds", "view", "linkType", "density", "graph", "showNames"], update);
  update(store.get());
}

export function setUpSearch(element: HTMLElement, store: ExplorerStore, explanation: (i: number) => string | undefined): HTMLInputElement {
  element.classList.add("search");
  const input = el("input");
  input.type = "search";
  input.placeholder = "Search: label, token, explanation, L12/3456  ( / )";
  input.setAttribute("aria-label", "Search in the graph");
  const results = el("ol", "search-results");
  results.hidden = true;
  element.append(input, results);

  let timer: ReturnType<typeof setTimeout> | null = null;
  const run = (): void => {
    const s = store.get();
    const hits = searchGraph(s.graph, input.value, { labels: s.labels, explanation });
    store.set({ searchQuery: input.value, searchResults: hits });
  };
  input.addEventListener("input", () => {
    if (timer !== null) clearTimeout(timer);
    timer = setTimeout(run, 80);
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      run();
      const first = store.get().searchResults[0];
      if (first !== undefined) select(store, first);
    } else if (event.key === "Escape") {
      input.value = "";
      run();
      input.blur();
    }
  });
  results.addEventListener("click", (event) => {
    const item = (event.target as HTMLElement).closest<HTMLElement>("li[data-node]");
    if (!item) return;
    const i = Number(item.dataset["node"]);
    if (event.ctrlKey || event.metaKey) togglePin(store, i);
    else select(store, i);
  });
  results.addEventListener("mouseover", (event) => {
    const item = (event.target as HTMLElement).closest<HTMLElement>("li[data-node]");
    if (item) store.set({ hovered: Number(item.dataset["node"]) });
  });

  store.watch(["searchResults", "selected", "pinned", "explanations", "showNames"], (s) => {
    results.hidden = s.searchQuery.trim() === "";
    const items = s.searchResults.slice(0, 100).map((i) => {
      const node = s.graph.nodes[i]!;
      const li = el("li");
      li.dataset["node"] = String(i);
      li.className = `${i === s.selected ? "is-selected" : ""}${s.pinned.includes(i) ? " is-pinned" : ""}`;
      li.append(el("span", "search-key", `${featureKey(node)} @${node.ctx}`), el("span", "search-label", nodeName(s, i)));
      return li;
    });
    if (!items.length && !results.hidden) items.push(el("li", "search-empty", "no match"));
    else if (s.searchResults.length > 100) items.push(el("li", "search-empty", `… ${s.searchResults.length - 100} more`));
    results.replaceChildren(...items);
  });
  return input;
}
