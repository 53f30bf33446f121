// Saved subgraphs (the API's Subgraph: pinned_ids, supernodes, node_labels, thresholds,
// clicked_id) to and from the explorer's state. `?subgraph=<share_slug>` on the page opens one;
// `toSubgraphFields` is what a save dialog sends. Field names come from the generated schema.

import type { SavedSubgraph, SubgraphFields } from "../api/types";
import { savedRows } from "./hypothesis";
import type { ExplorerState } from "./state";
import { emptyUrlState, parseLabels, parseSupernodes, validId, type UrlState } from "./urlState";

function unit(value: unknown): number | null {
  return typeof value === "number" && Number.isFinite(value) ? Math.min(1, Math.max(0, value)) : null;
}

/** A subgraph object from the API as URL state; anything malformed is dropped, never thrown. */
export function subgraphToUrlState(raw: unknown): UrlState {
  const state = emptyUrlState();
  if (typeof raw !== "object" || raw === null) return state;
  const r = raw as Partial<Record<keyof SubgraphFields, unknown>>;
  if (Array.isArray(r.pinned_ids)) state.pinnedIds = [...new Set(r.pinned_ids.filter(validId))].slice(0, 5000);
  state.supernodes = parseSupernodes(r.supernodes);
  state.labels = parseLabels(r.node_labels);
  if (validId(r.clicked_id)) state.clickedId = r.clicked_id;
  if (typeof r.thresholds === "object" && r.thresholds !== null) {
    const t = r.thresholds as Record<string, unknown>;
    state.pruningThreshold = unit(t["node"]);
    state.edgeThreshold = unit(t["edge"]);
    state.densityThreshold = unit(t["density"]);
  }
  return state;
}

/** The current view as the fields of a Subgraph to save. */
export function toSubgraphFields(s: ExplorerState): SubgraphFields {
  const id = (i: number): string => s.graph.nodes[i]!.id;
  return {
    pinned_ids: s.pinned.map(id),
    supernodes: s.groups.map((g) => [g.name, ...g.members.map(id)]),
    node_labels: Object.fromEntries([...s.labels].map(([i, label]) => [id(i), label])),
    thresholds: { node: s.thresholds.node, edge: s.thresholds.edge, density: s.thresholds.density },
    clicked_id: s.selected >= 0 ? id(s.selected) : "",
    test_rows: savedRows(s),
  };
}

/** What asking for `?subgraph=<slug>` gave: the subgraph (as the server sent it, and as URL
 * state), or why there is none to show (a private, deleted or never-made one is a 404). */
export type SubgraphFetch =
  | { ok: true; subgraph: SavedSubgraph; state: UrlState }
  | { ok: false; status: number };

function isSaved(raw: unknown): raw is SavedSubgraph {
  if (typeof raw !== "object" || raw === null) return false;
  const r = raw as Record<string, unknown>;
  return typeof r["share_slug"] === "string" && typeof r["title"] === "string" && typeof r["owner"] === "string";
}

export async function fetchSubgraph(url: string): Promise<SubgraphFetch> {
  try {
    const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    if (!response.ok) return { ok: false, status: response.status };
    const raw: unknown = await response.json();
    if (!isSaved(raw)) return { ok: false, status: 0 };
    return { ok: true, subgraph: { ...raw, notes: raw.notes ?? "", visibility: raw.visibility ?? "private" }, state: subgraphToUrlState(raw) };
  } catch {
    return { ok: false, status: 0 };
  }
}

/** The line the page shows when a linked subgraph cannot be opened. */
export function missingSubgraphText(status: number): string {
  if (status === 404 || status === 403) {
    return "The subgraph in this link could not be opened: it is private, was deleted, or never existed. Showing the graph without it.";
  }
  return "The subgraph in this link could not be loaded (the server did not answer). Showing the graph without it.";
}
