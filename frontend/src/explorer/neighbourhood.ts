// Links on demand, for graphs too large to ship whole: the artifact comes without `links`, and
// the links of the nodes in focus (selected, pinned, hovered) are fetched from
// GET /api/v1/graphs/{model}/{slug}/neighbourhood?node_id=...&direction=both&limit=...
// and merged into the graph (which rebuilds its CSR arrays from the links loaded so far).

import { mergeLinks, type Graph } from "./graph";
import type { ExplorerStore } from "./state";

const PER_REQUEST = 100; // node ids per request (the API's limit)
const LIMIT = 300; // links per node and direction
const HOVER_DELAY_MS = 120;

export class NeighbourhoodLoader {
  private readonly loaded = new Set<string>();
  private readonly pending = new Set<string>();
  requests = 0;

  constructor(
    private readonly url: string,
    private readonly fetcher: typeof fetch = (...args) => fetch(...args),
  ) {}

  /** Links of the given nodes not loaded before; [] when there is nothing new or on error. */
  async load(ids: string[]): Promise<unknown[]> {
    const wanted = ids.filter((id) => !this.loaded.has(id) && !this.pending.has(id)).slice(0, PER_REQUEST);
    if (!wanted.length) return [];
    wanted.forEach((id) => this.pending.add(id));
    const query = new URLSearchParams([...wanted.map((id) => ["node_id", id]), ["direction", "both"], ["limit", String(LIMIT)]]);
    this.requests++;
    try {
      const response = await this.fetcher(`${this.url}?${query}`, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (!response.ok) return [];
      const data = (await response.json()) as { links?: unknown };
      wanted.forEach((id) => this.loaded.add(id));
      return Array.isArray(data.links) ? data.links : [];
    } catch {
      return [];
    } finally {
      wanted.forEach((id) => this.pending.delete(id));
    }
  }
}

/** Keep the links of the nodes in focus loaded while the graph is partial. */
export function setUpNeighbourhood(store: ExplorerStore, loader: NeighbourhoodLoader): void {
  const fetchFor = async (nodes: number[]): Promise<void> => {
    const graph: Graph = store.get().graph;
    const links = await loader.load(nodes.filter((i) => i >= 0).map((i) => graph.nodes[i]!.id));
    if (links.length) store.set({ graph: mergeLinks(store.get().graph, links) });
  };
  let hoverTimer: ReturnType<typeof setTimeout> | null = null;
  store.watch(["selected", "pinned"], (s) => void fetchFor([s.selected, ...s.pinned]));
  store.watch(["hovered"], (s) => {
    if (hoverTimer !== null) clearTimeout(hoverTimer);
    if (s.hovered >= 0) hoverTimer = setTimeout(() => void fetchFor([s.hovered]), HOVER_DELAY_MS);
  });
  const s = store.get();
  void fetchFor([s.selected, ...s.pinned]);
}
