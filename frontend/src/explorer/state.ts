// The explorer's state, the view derived from it (visibility, layout; the hit-test grid on
// demand), and the mapping to and from the URL. Pure apart from the Store it is kept in.

import { nodeLabel, type Graph } from "./graph";
import type { RowSettings, SteeringRun } from "./hypothesis";
import { computeLayout, type Layout } from "./layout";
import { countVisibleEdges, DEFAULT_THRESHOLDS, pruneIndex, updateVisibleEdges, visibleNodes, type PruneIndex, type Thresholds } from "./prune";
import { buildGrid, type Grid } from "./spatial";
import { Store } from "./store";
import type { Group } from "./supernodes";
import { cleanLabel, type LinkType, type UrlState, type Viewport } from "./urlState";

export interface View {
  visible: Uint8Array;
  nVisible: number;
  edgeThreshold: number; // the one its visible edges are counted with (visibleEdgeCount)
  layout: Layout;
  millis: number; // time the last recompute took
}

// The hit-test grid of a view, built the first time the pointer needs it: a slider drag makes a
// view per step and hovers none of them, and on a 100k-node graph the grid is a sixth of a step.
const grids = new WeakMap<View, Grid>();
export function viewGrid(view: View): Grid {
  let grid = grids.get(view);
  if (!grid) {
    grid = buildGrid(view.layout.x, view.layout.y);
    grids.set(view, grid);
  }
  return grid;
}

// A view's visible edges, counted the first time they are asked for: only the toolbar shows the
// count, and it asks when the page is idle, so a slider drag (a view per step) counts once when
// it pauses instead of at every step, where counting was half of computing a view. A view made
// from a previous one keeps the last count made before it (of the same graph), to count from it.
interface EdgeCount {
  visible: Uint8Array;
  edgeThreshold: number;
  count: number;
}
const counted = new WeakMap<View, EdgeCount>();
const countedBefore = new WeakMap<View, EdgeCount>();

/** The visible edges of `view`, if counted already. */
export function knownEdgeCount(view: View): number | undefined {
  return counted.get(view)?.count;
}

/** The visible edges of `view` (of `graph`): within its edge threshold, both ends visible. */
export function visibleEdgeCount(graph: Graph, view: View): number {
  const known = counted.get(view);
  if (known) return known.count;
  const base = countedBefore.get(view);
  const updated =
    base && base.edgeThreshold === view.edgeThreshold
      ? updateVisibleEdges(graph, base.visible, base.count, view.visible, view.edgeThreshold)
      : null;
  const count = updated ?? countVisibleEdges(graph, view.visible, view.edgeThreshold);
  counted.set(view, { visible: view.visible, edgeThreshold: view.edgeThreshold, count });
  countedBefore.delete(view);
  return count;
}

/** The Test panel's slice: what the user chose per row, and the run being made or last made. */
export interface TestPanelState {
  settings: ReadonlyMap<string, RowSettings>; // by row key (a supernode's or pinned feature's)
  busy: boolean; // a run is being submitted or followed
  status: { text: string; bad: boolean };
  lastRun: SteeringRun | null; // as it was when its job ended
}

export interface ExplorerState {
  graph: Graph;
  prune: PruneIndex;
  hovered: number; // node index or -1
  selected: number;
  pinned: readonly number[];
  groups: readonly Group[];
  labels: ReadonlyMap<number, string>;
  thresholds: Thresholds;
  linkType: LinkType;
  viewport: Viewport | null; // null: fit to screen on next draw
  searchQuery: string;
  searchResults: readonly number[];
  grouping: readonly number[]; // nodes picked with g+click, waiting to be grouped
  density: Float32Array | null; // per node, from feature lookups (NaN unknown)
  view: View;
  helpOpen: boolean;
  // Per node, the feature's leading explanation (from feature lookups or any other source).
  explanations: ReadonlyMap<number, string>;
  // Name feature nodes by that explanation (true) or by their ids (false, the "Names" toggle).
  showNames: boolean;
  test: TestPanelState;
}

export type ExplorerStore = Store<ExplorerState>;

/** The view for these settings; `previous` (a view of the same graph) lets its edges be
 * counted from a count already made (see updateVisibleEdges) rather than over every edge. */
export function computeView(
  graph: Graph,
  prune: PruneIndex,
  thresholds: Thresholds,
  keep: Iterable<number>,
  density: Float32Array | null,
  previous: View | null = null,
): View {
  const start = performance.now();
  const visible = new Uint8Array(graph.n);
  const nVisible = visibleNodes(graph, prune, thresholds, visible, density, keep);
  const layout = computeLayout(graph, visible);
  const view = { visible, nVisible, edgeThreshold: thresholds.edge, layout, millis: performance.now() - start };
  const base = previous && (counted.get(previous) ?? countedBefore.get(previous));
  if (base) countedBefore.set(view, base);
  return view;
}

/** The thresholds a graph opens with: its own when it has them, else a generated graph's defaults. */
export function graphThresholds(graph: Graph): Thresholds {
  return {
    ...DEFAULT_THRESHOLDS,
    node: graph.metadata.nodeThreshold ?? DEFAULT_THRESHOLDS.node,
    edge: graph.metadata.edgeThreshold ?? DEFAULT_THRESHOLDS.edge,
  };
}

/** The state a page opens with, `opening` (what its URL or saved subgraph says) applied: its
 * view is computed once, for that (a 100k-node graph's view is a tenth of a second). */
export function initialState(graph: Graph, opening: Partial<Omit<ExplorerState, "graph" | "prune" | "view">> = {}): ExplorerState {
  const prune = pruneIndex(graph);
  const state = {
    graph,
    prune,
    hovered: -1,
    selected: -1,
    pinned: [],
    groups: [],
    labels: new Map(),
    thresholds: graphThresholds(graph),
    linkType: "both",
    viewport: null,
    searchQuery: "",
    searchResults: [],
    grouping: [],
    density: null,
    helpOpen: false,
    explanations: new Map(),
    showNames: true,
    test: { settings: new Map(), busy: false, status: { text: "", bad: false }, lastRun: null },
    ...opening,
  } satisfies Omit<ExplorerState, "view">;
  const keep = state.selected >= 0 ? [...state.pinned, state.selected] : state.pinned;
  return { ...state, view: computeView(graph, prune, state.thresholds, keep, state.density) };
}

export function createStore(graph: Graph, opening: Parameters<typeof initialState>[1] = {}): ExplorerStore {
  const store = new Store(initialState(graph, opening));
  // Recompute what is visible when anything that decides it changes.
  store.watch(["thresholds", "pinned", "density", "selected", "graph"], (s, prev) => {
    const selectionOnly =
      s.thresholds === prev.thresholds && s.pinned === prev.pinned && s.density === prev.density && s.graph === prev.graph;
    if (selectionOnly && (s.selected < 0 || s.view.visible[s.selected] === 1)) return;
    const keep = s.selected >= 0 ? [...s.pinned, s.selected] : s.pinned;
    const previous = s.graph === prev.graph ? s.view : null;
    store.set({ view: computeView(s.graph, s.prune, s.thresholds, keep, s.density, previous) });
  });
  return store;
}

/** The part of the state a link carries. */
export function toUrlState(s: ExplorerState): UrlState {
  const id = (i: number): string => s.graph.nodes[i]!.id;
  return {
    clickedId: s.selected >= 0 ? id(s.selected) : null,
    pinnedIds: s.pinned.map(id),
    supernodes: s.groups.map((g) => ({ name: g.name, ids: g.members.map(id) })),
    labels: [...s.labels].map(([i, label]) => [id(i), label]),
    linkType: s.linkType,
    pruningThreshold: s.thresholds.node,
    edgeThreshold: s.thresholds.edge,
    densityThreshold: s.thresholds.density < 1 ? s.thresholds.density : null,
    viewport: s.viewport,
  };
}

/** State fields from a parsed URL; ids the graph does not have are dropped. */
export function fromUrlState(graph: Graph, url: UrlState, defaults: Thresholds): Partial<ExplorerState> {
  const known = (ids: readonly string[]): number[] => {
    const out: number[] = [];
    const seen = new Set<number>();
    for (const id of ids) {
      const i = graph.index.get(id);
      if (i !== undefined && !seen.has(i)) {
        seen.add(i);
        out.push(i);
      }
    }
    return out;
  };
  const groups: Group[] = [];
  const grouped = new Set<number>();
  for (const supernode of url.supernodes) {
    const members = known(supernode.ids).filter((i) => !grouped.has(i));
    members.forEach((i) => grouped.add(i));
    if (members.length) groups.push({ name: cleanLabel(supernode.name) || "group", members });
  }
  const pinned = known(url.pinnedIds);
  // Group members are pinned by definition (Neuronpedia's files sometimes omit them).
  for (const g of groups) for (const i of g.members) if (!pinned.includes(i)) pinned.push(i);
  const labels = new Map<number, string>();
  for (const [id, label] of url.labels) {
    const i = graph.index.get(id);
    if (i !== undefined && label) labels.set(i, label);
  }
  const selected = url.clickedId !== null ? (graph.index.get(url.clickedId) ?? -1) : -1;
  return {
    selected,
    pinned,
    groups,
    labels,
    linkType: url.linkType,
    thresholds: {
      node: url.pruningThreshold ?? defaults.node,
      edge: url.edgeThreshold ?? defaults.edge,
      density: url.densityThreshold ?? defaults.density,
    },
    viewport: url.viewport,
  };
}

export function togglePin(store: ExplorerStore, i: number): void {
  const { pinned, groups } = store.get();
  if (pinned.includes(i)) {
    store.set({
      pinned: pinned.filter((p) => p !== i),
      groups: groups.map((g) => ({ ...g, members: g.members.filter((m) => m !== i) })).filter((g) => g.members.length > 0),
    });
  } else {
    store.set({ pinned: [...pinned, i] });
  }
}

export function select(store: ExplorerStore, i: number): void {
  store.set({ selected: i });
}

export function setLabel(store: ExplorerStore, i: number, label: string): void {
  const labels = new Map(store.get().labels);
  const clean = cleanLabel(label);
  if (clean) labels.set(i, clean);
  else labels.delete(i);
  store.set({ labels });
}

/** Adds (or replaces) the explanations of these nodes; `store.watch(["explanations"], ...)` sees them. */
export function addExplanations(store: ExplorerStore, found: Iterable<readonly [number, string]>): void {
  const explanations = new Map(store.get().explanations);
  let changed = false;
  for (const [i, text] of found) {
    if (explanations.get(i) === text) continue;
    explanations.set(i, text);
    changed = true;
  }
  if (changed) store.set({ explanations });
}

export function updateTestPanel(store: ExplorerStore, patch: Partial<TestPanelState>): void {
  store.set({ test: { ...store.get().test, ...patch } });
}

/** Keeps what the user chose for one row of the Test panel (the rest of its settings stay). */
export function setRowSettings(store: ExplorerStore, key: string, settings: RowSettings): void {
  const next = new Map(store.get().test.settings);
  next.set(key, settings);
  updateTestPanel(store, { settings: next });
}

/** What every panel calls node ``i``: the user's label; else, with names on, the graph's own label
 * (clerp) or the feature's best explanation (highest score; people's unscored ones after); else its id. */
export function nodeName(s: Pick<ExplorerState, "graph" | "labels" | "explanations" | "showNames">, i: number): string {
  const node = s.graph.nodes[i]!;
  const user = s.labels.get(i);
  if (user || !s.showNames || node.clerp) return nodeLabel(node, user);
  return s.explanations.get(i) ?? nodeLabel(node);
}
