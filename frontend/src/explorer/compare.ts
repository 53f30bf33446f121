// The comparison's logic, kept pure so it is tested without a page: the `compare` and
// `compareView` URL parameters, which graphs may be compared with this one, how each of this
// graph's nodes and edges is coloured by the diff (GET /api/v1/graph-diff, analysis/diff.py),
// the table's rows, and the interventions that patch the differing features from B into A.

import type { components } from "../api/schema";
import type { Graph } from "./graph";
import type { InterventionRequest } from "./hypothesis";

type Schemas = components["schemas"];
export type GraphDiff = Schemas["GraphDiff"];
export type DiffNode = Schemas["DiffNode"];
export type GraphRow = Schemas["Graph"];

const REF = /^[-a-zA-Z0-9_]{1,100}\/[-a-zA-Z0-9_]{1,100}$/;

export interface CompareState {
  ref: string; // graph B as `<model>/<slug>`
  side: boolean; // side by side (else the overlay alone)
}

/** The comparison named in a query string, or null (anything malformed is ignored). */
export function parseCompare(search: string): CompareState | null {
  const params = new URLSearchParams(search);
  const ref = params.get("compare") ?? "";
  if (!REF.test(ref)) return null;
  return { ref, side: params.get("compareView") === "side" };
}

/** The query string (without "?") with the comparison set (or removed, for null). */
export function withCompare(search: string, state: CompareState | null): string {
  const params = new URLSearchParams(search);
  params.delete("compare");
  params.delete("compareView");
  if (state) {
    params.set("compare", state.ref);
    if (state.side) params.set("compareView", "side");
  }
  return params.toString();
}

/** Graphs of the same model and transcoder set, this one left out, as `<model>/<slug>` refs. */
export function candidates(rows: readonly GraphRow[], model: string, set: string, slug: string): { ref: string; text: string }[] {
  return rows
    .filter((g) => g.model === model && (g.transcoder_set ?? "") === set && g.slug !== slug)
    .map((g) => ({ ref: `${g.model}/${g.slug}`, text: g.title || g.prompt }));
}

export type Mark = "only_a" | "more" | "less" | "same";

/** What the overlay draws for a node of A: only in A, more or less influential in B, or the same. */
export function markOf(node: DiffNode): Mark {
  if (node.status === "only_a") return "only_a";
  const change = node.delta_influence ?? 0;
  const activation = node.delta_activation ?? 0;
  if (Math.abs(change) < 1e-6 && Math.abs(activation) < 1e-6) return "same";
  return change < 0 ? "more" : "less";
}

export interface Overlay {
  marks: Map<number, Mark>; // node index in this graph -> mark
  edges: { source: number; target: number; status: string; delta: number }[]; // indices in this graph
  onlyB: number; // nodes of B this graph cannot show
}

/** The diff in this graph's node indices (A's side); B's nodes and edges it lacks are counted. */
export function overlayFor(graph: Graph, diff: GraphDiff): Overlay {
  const marks = new Map<number, Mark>();
  const local: (number | undefined)[] = diff.nodes.map((n) => (n.id_a !== null ? graph.index.get(n.id_a) : undefined));
  let onlyB = 0;
  diff.nodes.forEach((node, k) => {
    const i = local[k];
    if (i === undefined) onlyB += node.status === "only_b" ? 1 : 0;
    else marks.set(i, markOf(node));
  });
  const edges: Overlay["edges"] = [];
  for (const edge of diff.edges) {
    const source = local[edge.source];
    const target = local[edge.target];
    if (source === undefined || target === undefined || edge.status === "only_b") continue;
    edges.push({ source, target, status: edge.status, delta: edge.delta_weight });
  }
  return { marks, edges, onlyB };
}

export interface TableRow {
  node: DiffNode;
  name: string;
  where: string;
}

function nodeName(node: DiffNode): string {
  if (node.kind === "feature") return `L${node.layer}/${node.feature}`;
  if (node.kind === "error") return `Err L${node.layer}`;
  if (node.kind === "logit") return `Logit ${node.token}`;
  return `Emb ${node.token}`;
}

/** The table's rows: nodes that changed, by |Δ influence| as the server sorted them. */
export function tableRows(diff: GraphDiff, limit = 100): TableRow[] {
  const rows: TableRow[] = [];
  for (const node of diff.nodes) {
    if (rows.length >= limit) break;
    if (markOf(node) === "same" && node.status === "shared") continue;
    const where = `${node.pos_a ?? "–"} → ${node.pos_b ?? "–"}`;
    rows.push({ node, name: node.label || nodeName(node), where });
  }
  return rows;
}

/** The interventions that make A's features what they are in B: all that differ, or only the
 * members of one supernode (its node ids in A), most changed first, at most `limit`. */
export function patchFor(diff: GraphDiff, limit: number, members: ReadonlySet<string> | null = null): InterventionRequest[] {
  const out: InterventionRequest[] = [];
  for (const node of diff.nodes) {
    if (out.length >= limit) break;
    if (!node.patch) continue;
    if (members && (node.id_a === null || !members.has(node.id_a))) continue;
    out.push(node.patch as unknown as InterventionRequest);
  }
  return out;
}
