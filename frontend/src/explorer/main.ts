// Entry of the graph explorer page: load the graph, build the store, set up each panel, and keep
// the URL and the state in step (back/forward work; a copied link reopens the same view).

import "./explorer.css";
import { FeatureLookup, keyString } from "../api/features";
import { el } from "../site/dom";
import { setUpPruning, setUpSearch } from "./controls";
import { setUpExplainAction } from "./explainAction";
import { download, exportGraphJson, linkGraphSvg, subgraphSvg, svgToPng } from "./exporting";
import { featureKeyOf, setUpFeaturePanel } from "./featurePanel";
import type { Graph } from "./graph";
import { loadGraphFrom, nodeRecords, thisThread, type GraphSourceKind, type GraphUrls } from "./graphSource";
import { setUpLinkGraph, type LinkGraphHandle } from "./linkGraph";
import { LoaderWorker } from "./loaderClient";
import { setUpNodeConnections } from "./connections";
import { settingsFromSaved } from "./hypothesis";
import { addExplanations, createStore, graphThresholds, updateTestPanel, fromUrlState, toUrlState, type ExplorerState, type ExplorerStore } from "./state";
import { NeighbourhoodLoader, setUpNeighbourhood } from "./neighbourhood";
import { announceExplorer } from "./ready";
import type { SavedSubgraph } from "../api/types";
import { fetchSubgraph, missingSubgraphText } from "./savedSubgraph";
import { setUpSubgraph, type SubgraphHandle } from "./subgraph";
import { emptyUrlState, parseLabels, parseSupernodes, parseUrlState, serialiseUrlState, validId, type UrlState } from "./urlState";
import { groupNodes } from "./supernodes";
import { setUpTestPanel } from "./testPanel";
import { setUpComparePanel } from "./comparePanel";
import { setUpSuggestions } from "./suggestPanel";
import { releaseOnLeave, typedArrayBuffers } from "./release";

declare global {
  interface Window {
    __explorer?: {
      store: ExplorerStore;
      linkGraph: LinkGraphHandle;
      lookup: FeatureLookup | null;
      loadMs: Record<string, number>;
      graphSource: GraphSourceKind; // what the graph was read from: its binary sidecar or its JSON
    };
  }
}

/** The qParams saved in a graph file, read with the same care as a URL. */
function urlStateFromQParams(q: Record<string, unknown>): UrlState {
  const state = emptyUrlState();
  const pinned = q["pinnedIds"];
  const ids = Array.isArray(pinned) ? pinned : typeof pinned === "string" ? pinned.split(",") : [];
  state.pinnedIds = ids.filter(validId).slice(0, 5000);
  state.supernodes = parseSupernodes(q["supernodes"]);
  state.labels = parseLabels(q["clerps"]);
  if (validId(q["clickedId"])) state.clickedId = q["clickedId"];
  if (q["linkType"] === "input" || q["linkType"] === "output") state.linkType = q["linkType"];
  const threshold = q["pruningThreshold"];
  if (typeof threshold === "number" && threshold >= 0 && threshold <= 1) state.pruningThreshold = threshold;
  return state;
}

const DISCRETE: (keyof ExplorerState)[] = ["selected", "pinned", "groups", "labels", "linkType"];

function syncUrl(store: ExplorerStore): void {
  let applying = false;
  let timer: ReturnType<typeof setTimeout> | null = null;
  const write = (push: boolean): void => {
    const query = serialiseUrlState(toUrlState(store.get()), new URLSearchParams(location.search));
    if (query === location.search.replace(/^\?/, "")) return;
    const url = `${location.pathname}${query ? `?${query}` : ""}${location.hash}`;
    if (push) history.pushState(null, "", url);
    else history.replaceState(null, "", url);
  };
  store.subscribe((s, prev) => {
    if (applying) return;
    if (DISCRETE.some((key) => s[key] !== prev[key])) {
      if (timer !== null) clearTimeout(timer);
      timer = null;
      write(true);
    } else if (s.viewport !== prev.viewport || s.thresholds !== prev.thresholds) {
      // Continuous changes (drag, wheel, sliders) replace the entry, at most every 250 ms.
      if (timer === null) {
        timer = setTimeout(() => {
          timer = null;
          write(false);
        }, 250);
      }
    }
  });
  window.addEventListener("popstate", () => {
    const s = store.get();
    applying = true;
    try {
      store.set({ ...fromUrlState(s.graph, parseUrlState(location.search), s.thresholds), grouping: [] });
    } finally {
      applying = false;
    }
  });
}

function helpOverlay(): HTMLElement {
  const overlay = el("div", "help-overlay");
  overlay.hidden = true;
  overlay.setAttribute("role", "dialog");
  overlay.setAttribute("aria-label", "Keyboard shortcuts");
  const box = el("div", "help-box");
  box.appendChild(el("h2", "", "Keyboard and mouse"));
  const rows: [string, string][] = [
    ["click", "select a node (its connections and feature)"],
    ["Ctrl/Cmd + click", "pin / unpin a node (subgraph)"],
    ["g + click", "pick nodes for a group; release g to group them"],
    ["double-click (subgraph)", "rename a group / label a node"],
    ["drag, wheel", "pan, zoom"],
    ["← ↑ → ↓", "pan"],
    ["+ / −", "zoom in / out"],
    ["0 or f", "fit to screen"],
    ["/", "search"],
    ["Escape", "clear selection (close this help)"],
    ["?", "this help"],
  ];
  const table = el("table");
  for (const [keys, what] of rows) {
    const tr = el("tr");
    tr.append(el("th", "", keys), el("td", "", what));
    table.appendChild(tr);
  }
  box.appendChild(table);
  const close = el("button", "", "Close");
  close.type = "button";
  box.appendChild(close);
  overlay.appendChild(box);
  return overlay;
}

function setUpKeyboard(store: ExplorerStore, linkGraph: LinkGraphHandle, search: HTMLInputElement, graphEl: HTMLElement, subEl: HTMLElement): void {
  const setGrouping = (on: boolean): void => {
    graphEl.dataset["grouping"] = on ? "1" : "0";
    subEl.dataset["grouping"] = on ? "1" : "0";
  };
  document.addEventListener("keydown", (event) => {
    const target = event.target as HTMLElement | null;
    if (target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA" || target.isContentEditable)) return;
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const s = store.get();
    switch (event.key) {
      case "Escape":
        if (s.helpOpen) store.set({ helpOpen: false });
        else store.set({ selected: -1, grouping: [] });
        break;
      case "?":
        store.set({ helpOpen: !s.helpOpen });
        break;
      case "/":
        event.preventDefault();
        search.focus();
        break;
      case "g":
        setGrouping(true);
        break;
      case "0":
      case "f":
        linkGraph.fit();
        break;
      case "+":
      case "=":
        linkGraph.zoomBy(1.25);
        break;
      case "-":
      case "_":
        linkGraph.zoomBy(0.8);
        break;
      case "ArrowLeft":
        linkGraph.panBy(60, 0);
        break;
      case "ArrowRight":
        linkGraph.panBy(-60, 0);
        break;
      case "ArrowUp":
        linkGraph.panBy(0, 60);
        break;
      case "ArrowDown":
        linkGraph.panBy(0, -60);
        break;
      default:
        return;
    }
    if (event.key.startsWith("Arrow")) event.preventDefault();
  });
  document.addEventListener("keyup", (event) => {
    if (event.key !== "g") return;
    setGrouping(false);
    const s = store.get();
    if (s.grouping.length >= 2) {
      store.set({ groups: groupNodes(s.groups, s.grouping, `group ${s.groups.length + 1}`), grouping: [] });
    }
  });
  // g+click in the link graph picks nodes (pinning them, since groups live in the subgraph).
  graphEl.addEventListener("node-click", (event) => {
    const { node } = (event as CustomEvent<{ node: number }>).detail;
    if (graphEl.dataset["grouping"] !== "1" || node < 0) return;
    const now = store.get();
    const picked = now.grouping.includes(node) ? now.grouping.filter((i) => i !== node) : [...now.grouping, node];
    store.set({ grouping: picked, pinned: now.pinned.includes(node) ? now.pinned : [...now.pinned, node] });
  });
  window.addEventListener("blur", () => setGrouping(false));
}

function setUpExport(element: HTMLElement, store: ExplorerStore, linkGraph: LinkGraphHandle, subgraph: SubgraphHandle, slug: string): void {
  element.classList.add("export-menu");
  const button = (text: string, action: () => void | Promise<void>): HTMLButtonElement => {
    const b = el("button", "", text);
    b.type = "button";
    b.addEventListener("click", () => void action());
    element.appendChild(b);
    return b;
  };
  const name = slug || "graph";
  const copy = button("Copy link", async () => {
    try {
      await navigator.clipboard.writeText(location.href);
      copy.textContent = "Copied ✓";
      copy.setAttribute("aria-label", "Link copied");
      setTimeout(() => {
        copy.textContent = "Copy link";
        copy.removeAttribute("aria-label");
      }, 1500);
    } catch {
      window.prompt("Copy this link", location.href);
    }
  });
  // A graph read from its sidecar has its node records read again from there (./graphSource.ts).
  const json = button("JSON", async () => {
    json.disabled = true;
    json.textContent = "JSON…";
    try {
      const s = store.get();
      const text = JSON.stringify(exportGraphJson(s, await nodeRecords(s.graph)));
      download(`${name}.json`, new Blob([text], { type: "application/json" }));
      json.textContent = "JSON";
    } catch (error) {
      json.textContent = `JSON failed: ${error instanceof Error ? error.message : "the graph could not be exported"}`;
      setTimeout(() => (json.textContent = "JSON"), 6000);
    } finally {
      json.disabled = false;
    }
  });
  button("SVG", () => {
    const { width, height } = linkGraph.size();
    const vp = store.get().viewport;
    if (!vp) linkGraph.fit();
    download(`${name}.svg`, new Blob([linkGraphSvg(store.get(), store.get().viewport!, width, height)], { type: "image/svg+xml" }));
  });
  button("PNG", () => {
    linkGraph.composite().toBlob((blob) => blob && download(`${name}.png`, blob), "image/png");
  });
  button("Subgraph SVG", () => download(`${name}-subgraph.svg`, new Blob([subgraphSvg(subgraph.svg)], { type: "image/svg+xml" })));
  button("Subgraph PNG", async () => {
    const rect = subgraph.svg.getBoundingClientRect();
    const blob = await svgToPng(subgraphSvg(subgraph.svg), rect.width, rect.height);
    if (blob) download(`${name}-subgraph.png`, blob);
  });
}

function prefetchSummaries(graph: Graph, store: ExplorerStore, lookup: FeatureLookup, model: string, set: string): void {
  const keys = new Map<string, number[]>();
  const list = [];
  for (let i = 0; i < graph.n; i++) {
    const key = featureKeyOf(graph, graph.nodes[i]!, model, set);
    if (!key) continue;
    const k = keyString(key);
    const nodes = keys.get(k);
    if (nodes) nodes.push(i);
    else {
      keys.set(k, [i]);
      list.push(key);
    }
  }
  void lookup.summaries(list, (found) => {
    const density = store.get().density?.slice() ?? new Float32Array(graph.n).fill(Number.NaN);
    const explanations: [number, string][] = [];
    for (const [k, detail] of found) {
      for (const i of keys.get(k) ?? []) {
        if (detail.density !== null) density[i] = detail.density;
        const text = detail.explanations[0]?.text;
        if (text) explanations.push([i, text]);
      }
    }
    addExplanations(store, explanations);
    store.set({ density });
  });
}

/** Load and index the graph, its slow parsing in the loader worker (./loaderClient.ts). */
async function loadGraph(urls: GraphUrls, loadMs: Record<string, number>): Promise<{ graph: Graph; source: GraphSourceKind }> {
  const absolute = (url: string): string => new URL(url, location.href).href;
  const request: GraphUrls = { json: absolute(urls.json), ...(urls.binary ? { binary: absolute(urls.binary) } : {}) };
  const worker = LoaderWorker.start();
  try {
    const loaded = await loadGraphFrom(request, worker ?? thisThread);
    Object.assign(loadMs, loaded.ms);
    return loaded;
  } finally {
    worker?.terminate();
  }
}

/** What a viewer of a shared subgraph reads first: its title, who saved it, and its notes. */
function subgraphBanner(saved: SavedSubgraph): HTMLElement {
  const box = el("section", "subgraph-banner");
  box.setAttribute("aria-label", "Saved subgraph");
  const head = el("p", "subgraph-banner-title");
  head.append(el("strong", "", saved.title), el("span", "muted", ` · saved by ${saved.owner} · v${saved.version}`));
  box.appendChild(head);
  if (saved.notes.trim()) box.appendChild(el("p", "subgraph-banner-notes", saved.notes));
  return box;
}

async function start(root: HTMLElement): Promise<void> {
  const graphUrl = root.dataset["graphUrl"] ?? "";
  const graphBinaryUrl = root.dataset["graphBinaryUrl"] ?? "";
  const lookupUrl = root.dataset["lookupUrl"] ?? "";
  const model = root.dataset["model"] ?? "";
  const set = root.dataset["set"] ?? "";
  const status = el("p", "explorer-status", "Loading graph…");
  root.replaceChildren(status);
  let graph: Graph;
  let graphSource: GraphSourceKind;
  const loadMs: Record<string, number> = {};
  try {
    ({ graph, source: graphSource } = await loadGraph({ json: graphUrl, ...(graphBinaryUrl ? { binary: graphBinaryUrl } : {}) }, loadMs));
  } catch (error) {
    status.textContent = error instanceof Error ? error.message : "the graph could not be loaded";
    status.classList.add("is-error");
    return;
  }
  const t2 = performance.now();
  const lookup = lookupUrl ? new FeatureLookup(lookupUrl) : null;

  // State: the URL wins; a bare URL opens a saved subgraph (?subgraph=<share slug>) if it names
  // one, else the view saved in the file's qParams.
  const fromUrl = parseUrlState(location.search);
  const bare = serialiseUrlState(fromUrl) === "";
  const share = new URLSearchParams(location.search).get("subgraph") ?? "";
  const subgraphApi = root.dataset["subgraphUrl"] ?? "";
  // Asked for once, here; site/subgraphs.ts reads the answer from announceExplorer below.
  const asked = share !== "";
  const fetched = asked && subgraphApi && /^[A-Za-z0-9_-]{1,32}$/.test(share) ? await fetchSubgraph(subgraphApi + share) : null;
  const saved = fetched?.ok ? fetched.subgraph : null;
  const initial = fetched?.ok && bare ? fetched.state : bare ? urlStateFromQParams(graph.qParams) : fromUrl;
  const store = createStore(graph, fromUrlState(graph, initial, graphThresholds(graph)));
  if (fetched?.ok && bare) updateTestPanel(store, { settings: settingsFromSaved(store.get(), fetched.subgraph.test_rows) });
  loadMs["state"] = performance.now() - t2;

  // Page skeleton.
  const top = el("div", "explorer-top");
  const title = el("h1", "explorer-title", root.dataset["title"] || graph.metadata.prompt || graph.metadata.slug || "Attribution graph");
  title.title = graph.metadata.prompt ? `Prompt: ${graph.metadata.prompt}` : title.textContent ?? "";
  const searchEl = el("div");
  const exportEl = el("div");
  const helpButton = el("button", "help-button", "?");
  helpButton.type = "button";
  helpButton.title = "Keyboard shortcuts (?)";
  top.append(title, searchEl, exportEl, helpButton);
  const pruningEl = el("div");
  const main = el("div", "explorer-main");
  const graphEl = el("div");
  graphEl.setAttribute("aria-label", "Link graph");
  const featureEl = el("div");
  main.append(graphEl, featureEl);
  const lower = el("div", "explorer-lower");
  const connectionsEl = el("div");
  const subgraphEl = el("div");
  lower.append(connectionsEl, subgraphEl);
  const help = helpOverlay();
  root.replaceChildren(top, pruningEl, main, lower, help);
  const interveneUrl = root.dataset["interveneUrl"] ?? "";
  const neighbourhoodUrl = root.dataset["neighbourhoodUrl"] ?? "";
  if (graph.partial) {
    const text = neighbourhoodUrl
      ? "This graph is large: links are loaded for the nodes you hover, select or pin."
      : "This graph came without links.";
    root.insertBefore(el("p", "explorer-note", text), main);
  }
  if (asked && !saved) {
    const note = el("p", "explorer-note subgraph-missing", missingSubgraphText(fetched?.ok === false ? fetched.status : 404));
    note.setAttribute("role", "alert");
    root.insertBefore(note, main);
  }
  if (saved) root.insertBefore(subgraphBanner(saved), main);
  if (graph.dropped.nodes || graph.dropped.links) {
    const note = el("p", "explorer-note", `${graph.dropped.nodes} nodes and ${graph.dropped.links} links in the file were unusable and were skipped.`);
    root.insertBefore(note, main);
  }

  const linkGraph = setUpLinkGraph(graphEl, store);
  setUpPruning(pruningEl, store);
  const search = setUpSearch(searchEl, store, (i) => store.get().explanations.get(i));
  const featurePrefix = root.dataset["featurePagePrefix"] ?? "";
  setUpNodeConnections(connectionsEl, store, featurePrefix);
  setUpFeaturePanel(featureEl, store, lookup, model, set, featurePrefix);
  const subgraph = setUpSubgraph(subgraphEl, store);
  const suggestUrl = root.dataset["supernodeSuggestionsUrl"] ?? "";
  if (suggestUrl) setUpSuggestions(subgraphEl, store, { url: suggestUrl, bar: subgraph.bar, graphEl });
  setUpExport(exportEl, store, linkGraph, subgraph, graph.metadata.slug);
  const explainUrl = root.dataset["explainUrl"] ?? "";
  if (explainUrl && lookupUrl) {
    const explainEl = el("div");
    pruningEl.after(explainEl);
    setUpExplainAction(explainEl, {
      explainUrl,
      model,
      set,
      graphSlug: root.dataset["graphSlug"] ?? "",
      // A fresh lookup: the page's own has the old explanations cached.
      onDone: () => prefetchSummaries(graph, store, new FeatureLookup(lookupUrl), model, set),
    });
  }
  setUpKeyboard(store, linkGraph, search, graphEl, subgraphEl);
  if (interveneUrl) {
    // The Test panel (not in embeds): interventions and steering on the pinned features.
    const testEl = el("section");
    testEl.setAttribute("aria-label", "Test this hypothesis");
    root.insertBefore(testEl, help);
    const runsUrl = root.dataset["subgraphRunsUrl"] ?? "";
    setUpTestPanel(testEl, store, {
      model,
      set,
      graphSlug: root.dataset["graphSlug"] ?? "",
      interveneUrl,
      steerUrl: root.dataset["steerUrl"] ?? "",
      graphRunsUrl: root.dataset["graphRunsUrl"] ?? "",
      subgraphRunsUrl: (slug) => runsUrl.replace("-/", `${encodeURIComponent(slug)}/`),
      canRun: root.dataset["canRun"] === "1",
      loginUrl: root.dataset["loginUrl"] ?? "/accounts/login/",
      missingSubgraph: asked && !saved ? share : "",
    });
  }
  const diffUrl = root.dataset["diffUrl"] ?? "";
  if (diffUrl) {
    // Compare with another graph of the same set (./comparePanel.ts); embeds show the overlay.
    const compareEl = el("section");
    compareEl.setAttribute("aria-label", "Compare with another graph");
    root.insertBefore(compareEl, help);
    setUpComparePanel(compareEl, store, {
      model,
      set,
      graphSlug: root.dataset["graphSlug"] ?? "",
      diffUrl,
      graphsUrl: root.dataset["graphsUrl"] ?? "",
      interveneUrl,
      canRun: root.dataset["canRun"] === "1",
      graphEl,
    });
  }
  helpButton.addEventListener("click", () => store.set({ helpOpen: true }));
  help.querySelector("button")?.addEventListener("click", () => store.set({ helpOpen: false }));
  help.addEventListener("click", (event) => {
    if (event.target === help) store.set({ helpOpen: false });
  });
  store.watch(["helpOpen"], (s) => {
    help.hidden = !s.helpOpen;
  });
  syncUrl(store);
  // Leaving the page for good frees its graph's arrays at once, not at V8's next collection.
  releaseOnLeave(() => typedArrayBuffers(store.get()));
  if (graph.partial && neighbourhoodUrl) setUpNeighbourhood(store, new NeighbourhoodLoader(neighbourhoodUrl));
  loadMs["setup"] = performance.now() - t2;

  // The browser tests and the load benchmark read the page through this handle.
  window.__explorer = { store, linkGraph, lookup, loadMs, graphSource };
  announceExplorer({ store, subgraph: saved });
  requestAnimationFrame(() => {
    linkGraph.scheduler.flush();
    root.dataset["ready"] = "1";
    if (lookup) prefetchSummaries(graph, store, lookup, model, set);
  });
}

const root = document.getElementById("explorer");
if (root) void start(root);
