// The Test panel's logic, kept pure so it is tested without a page: which rows the pinned
// subgraph gives (one per supernode or pinned feature), the API request they make, and how a
// run's result reads (before/after bars, the changed activations, a one-line summary).

import type { components } from "../api/schema";
import { Kind, nodeLabel, type Graph } from "./graph";
import type { ExplorerState } from "./state";
import { aggregate, groupNodes, type Group } from "./supernodes";

type Schemas = components["schemas"];
export type InterventionRequest = Schemas["InterventionRequest"];
export type InterveneRequest = Schemas["InterveneRequestRequest"];
export type SteerRequest = Schemas["SteerRequestRequest"];
export type SteeringRun = Schemas["SteeringRun"];
export type InterveneResult = Schemas["InterveneResult"];
export type SteerResult = Schemas["SteerResult"];
export type Action = Schemas["ActionEnum"];
export type Intervention = Schemas["Intervention"];

export const ACTIONS: readonly Action[] = ["ablate", "scale", "set"];
export const MAX_NEW_TOKENS = 128;

export interface FeatureRef {
  layer: number;
  position: number;
  feature: number;
}

/** One line of the panel: a supernode (one strength for every member) or one pinned feature. */
export interface TestRow {
  key: string; // the subgraph unit's key, so a setting survives re-renders
  name: string;
  members: FeatureRef[];
  skipped: number; // members that are not features (errors, tokens, logits)
  activation: number; // mean activation of the members in the graph (NaN when unknown)
  action: Action;
  value: number;
  allPositions: boolean;
}

export interface RowSettings {
  action: Action;
  value: number;
  allPositions: boolean;
}

/** A strength slider's range for an action: factors for scale, activations for set. */
export function sliderRange(action: Action, activation: number): { min: number; max: number; step: number } {
  if (action === "scale") return { min: -10, max: 10, step: 0.1 };
  const top = Number.isFinite(activation) && activation > 0 ? Math.ceil(activation * 4) : 10;
  return { min: -top, max: top, step: top / 200 };
}

/** What a row starts with when its action is picked: a scale that doubles, a set that doubles. */
export function defaultValue(action: Action, activation: number): number {
  if (action === "scale") return 2;
  if (action === "set") return Number.isFinite(activation) ? Math.round(activation * 200) / 100 : 1;
  return 0;
}

/** The rows for the pinned units, keeping the settings the user gave each one before. */
export function testRows(s: ExplorerState, previous: ReadonlyMap<string, RowSettings>): TestRow[] {
  const g = s.graph;
  const { units } = aggregate(g, s.pinned, s.groups);
  const rows: TestRow[] = [];
  for (const unit of units) {
    const members: FeatureRef[] = [];
    let activation = 0;
    let known = 0;
    for (const i of unit.members) {
      const node = g.nodes[i]!;
      if (node.kind !== Kind.Feature || node.feature === null || node.ctx < 1) continue;
      members.push({ layer: node.layer, position: node.ctx, feature: node.feature });
      if (Number.isFinite(node.activation)) {
        activation += node.activation;
        known++;
      }
    }
    const name = unit.group >= 0 ? s.groups[unit.group]!.name : (s.labels.get(unit.members[0]!) ?? g.nodes[unit.members[0]!]!.clerp);
    const first = g.nodes[unit.members[0]!]!;
    // Tokens, errors and logits by what they are (Emb: " cat"), never by their raw ids.
    const fallback = first.kind === Kind.Feature ? `L${first.layer}/${first.feature ?? "?"}@${first.ctx}` : nodeLabel(first);
    const mean = known ? activation / known : NaN;
    const kept = previous.get(unit.key);
    rows.push({
      key: unit.key,
      name: name || fallback,
      members,
      skipped: unit.members.length - members.length,
      activation: mean,
      action: kept?.action ?? "ablate",
      value: kept?.value ?? 0,
      allPositions: kept?.allPositions ?? false,
    });
  }
  return rows;
}

/** A row that changes nothing (scaled by 1): it is not sent, and a run restored leaves the rows
 * it did not touch so. */
export function isNoOp(row: Pick<RowSettings, "action" | "value">): boolean {
  return row.action === "scale" && row.value === 1;
}

export const NO_CHANGE: RowSettings = { action: "scale", value: 1, allPositions: false };

/** The API's interventions for the rows that have features: groups as groups, the rest single. */
export function interventionsFor(rows: readonly TestRow[]): InterventionRequest[] {
  const out: InterventionRequest[] = [];
  for (const row of rows) {
    if (!row.members.length || isNoOp(row)) continue;
    const value = row.action === "ablate" ? {} : { value: row.value };
    const refs = row.members.map((m) => ({ layer: m.layer, position: row.allPositions ? null : m.position, feature: m.feature }));
    // Every position makes members at several positions one feature each: say it once.
    const distinct = [...new Map(refs.map((r) => [`${r.layer}/${r.feature}/${r.position}`, r])).values()];
    if (row.key.startsWith("g:") || distinct.length > 1) {
      out.push({ group: row.name.slice(0, 200), features: distinct, action: row.action, ...value });
    } else {
      out.push({ ...distinct[0]!, action: row.action, ...value });
    }
  }
  return out;
}

/** Vocabulary ids of the graph's target logits (logit node ids are `{layer}_{token}_{pos}`). */
export function logitTokens(graph: Graph): number[] {
  const tokens: number[] = [];
  for (const node of graph.nodes) {
    if (node.kind !== Kind.Logit) continue;
    const token = Number(node.id.split("_")[1]);
    if (Number.isInteger(token) && token >= 0 && !tokens.includes(token)) tokens.push(token);
  }
  return tokens.slice(0, 50);
}

export interface Bar {
  token: number;
  text: string;
  before: number;
  after: number;
  target: boolean; // one of the graph's target logits
}

/** Rows for the before/after chart: targets first, then by the largest probability either way. */
export function bars(result: InterveneResult, targets: readonly number[], limit = 12): Bar[] {
  const rows = result.logits.map((r) => ({
    token: r.token,
    text: r.text,
    before: r.clean_probability,
    after: r.probability,
    target: targets.includes(r.token),
  }));
  rows.sort((a, b) => Number(b.target) - Number(a.target) || Math.max(b.before, b.after) - Math.max(a.before, a.after));
  return rows.slice(0, limit);
}

/** Percentage points, signed: "+12.5 pp", "−0.3 pp". */
export function pointChange(before: number, after: number): string {
  const pp = (after - before) * 100;
  const sign = pp > 0.005 ? "+" : pp < -0.005 ? "−" : "±";
  return `${sign}${Math.abs(pp).toFixed(Math.abs(pp) >= 10 ? 0 : 1)} pp`;
}

/** What the panel calls a feature of a run: its label in this graph, else `L{layer}/{feature}`. */
export type FeatureNamer = (layer: number, feature: number, position: number | null) => string | null;

function describe(item: InterventionRequest, name: FeatureNamer): string {
  const single = (): string => {
    const named = name(item.layer ?? -1, item.feature ?? -1, item.position ?? null);
    return named ?? `L${item.layer}/${item.feature}`;
  };
  const what = item.group ? `${item.group} (${item.features?.length ?? 0})` : single();
  const where = item.group ? "" : item.position === null ? " everywhere" : `@${item.position}`;
  const how = item.action === "ablate" ? "ablate" : item.action === "scale" ? `×${item.value}` : `=${item.value}`;
  return `${how} ${what}${where}`;
}

/** Names features by the graph's nodes (the user's label, the file's, else the feature's id). */
export function featureNamer(s: Pick<ExplorerState, "graph" | "labels">): FeatureNamer {
  return (layer, feature, position) => {
    const g = s.graph;
    for (let i = 0; i < g.n; i++) {
      const node = g.nodes[i]!;
      if (node.kind !== Kind.Feature || node.layer !== layer || node.feature !== feature) continue;
      if (position !== null && node.ctx !== position) continue;
      return s.labels.get(i) || node.clerp || null;
    }
    return null;
  };
}

/** One line for the history: what was done, how, and what came of it. */
export function summary(run: SteeringRun, name: FeatureNamer = () => null): string {
  // Items that changed nothing (scaled by 1, from older runs) say nothing about the run.
  const items = run.interventions.filter((item) => !(item.action === "scale" && item.value === 1)).map((item) => describe(item, name));
  const what = items.length ? (items.length > 2 ? `${items.slice(0, 2).join(", ")} +${items.length - 2}` : items.join(", ")) : "no interventions";
  const settings = run.settings as Record<string, unknown>;
  const how = run.kind === "intervene" ? String(settings["mode"] ?? "") : `${String(settings["n_tokens"] ?? "")} tokens, T=${String(settings["temperature"] ?? "")}`;
  return `${run.kind === "intervene" ? "Intervene" : "Steer"}: ${what} · ${how}`;
}

/**
 * Which tokens of two continuations are not shared, by a longest common subsequence of their ids,
 * so one inserted token does not mark the whole rest of the text as changed.
 */
export function changedTokens(a: readonly number[], b: readonly number[]): [boolean[], boolean[]] {
  const n = a.length;
  const m = b.length;
  const lcs = Array.from({ length: n + 1 }, () => new Int32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i]![j] = a[i] === b[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
    }
  }
  const inA = new Array<boolean>(n).fill(true);
  const inB = new Array<boolean>(m).fill(true);
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (a[i] === b[j]) {
      inA[i++] = false;
      inB[j++] = false;
    } else if (lcs[i + 1]![j]! >= lcs[i]![j + 1]!) {
      i++;
    } else {
      j++;
    }
  }
  return [inA, inB];
}

/** The result's kind, checked at run time (the schema types it as one or the other). */
export function isSteerResult(result: SteeringRun["result"]): result is SteerResult {
  return result !== null && typeof result === "object" && "steered" in result && "default" in result;
}

export function isInterveneResult(result: SteeringRun["result"]): result is InterveneResult {
  return result !== null && typeof result === "object" && "logits" in result && Array.isArray(result.logits);
}

/** A Test panel row as a saved subgraph keeps it: by node ids, so it outlives the page. */
export interface SavedRow {
  ids: string[];
  action: Action;
  value: number;
  all_positions: boolean;
}

/** The rows' settings the user chose, by their members' ids (for Subgraph.test_rows). */
export function savedRows(s: ExplorerState): SavedRow[] {
  const { units } = aggregate(s.graph, s.pinned, s.groups);
  const out: SavedRow[] = [];
  for (const unit of units) {
    const kept = s.test.settings.get(unit.key);
    if (!kept) continue;
    out.push({ ids: unit.members.map((i) => s.graph.nodes[i]!.id), action: kept.action, value: kept.value, all_positions: kept.allPositions });
  }
  return out;
}

const membersKey = (ids: readonly (string | number)[]): string => [...ids].map(String).sort().join(" ");

/** Saved rows back as the panel's settings, for the units of this state with the same members;
 * anything malformed or no longer pinned is dropped. */
export function settingsFromSaved(s: Pick<ExplorerState, "graph" | "pinned" | "groups">, raw: unknown): Map<string, RowSettings> {
  const settings = new Map<string, RowSettings>();
  if (!Array.isArray(raw)) return settings;
  const { units } = aggregate(s.graph, s.pinned, s.groups);
  const byMembers = new Map(units.map((u) => [membersKey(u.members.map((i) => s.graph.nodes[i]!.id)), u.key]));
  for (const row of raw.slice(0, 5000)) {
    if (typeof row !== "object" || row === null) continue;
    const r = row as Record<string, unknown>;
    const ids = Array.isArray(r["ids"]) ? r["ids"].filter((v): v is string => typeof v === "string") : [];
    const key = byMembers.get(membersKey(ids));
    const action = r["action"];
    const value = r["value"];
    if (!key || !ACTIONS.includes(action as Action) || typeof value !== "number" || !Number.isFinite(value)) continue;
    settings.set(key, { action: action as Action, value, allPositions: r["all_positions"] === true });
  }
  return settings;
}

/**
 * The pins, groups and row settings that reproduce a past run in the panel: its features are
 * pinned (its groups made again when they are not there), its rows set as they were, and the
 * other rows left unchanged (scaled by 1), so "Run" now makes the same run.
 */
export function restoreRun(
  s: Pick<ExplorerState, "graph" | "pinned" | "groups">,
  interventions: readonly Intervention[],
): { pinned: number[]; groups: Group[]; settings: Map<string, RowSettings> } {
  const g = s.graph;
  const pinned = [...s.pinned];
  let groups: Group[] = [...s.groups];
  const find = (layer: number, feature: number, position: number | null): number => {
    let fallback = -1;
    for (let i = 0; i < g.n; i++) {
      const node = g.nodes[i]!;
      if (node.kind !== Kind.Feature || node.layer !== layer || node.feature !== feature) continue;
      if (position !== null ? node.ctx === position : pinned.includes(i)) return i;
      if (position === null && fallback < 0) fallback = i;
    }
    return fallback;
  };
  const wanted: { members: number[]; settings: RowSettings }[] = [];
  for (const item of interventions) {
    const refs = item.group ? (item.features ?? []) : [{ layer: item.layer ?? -1, feature: item.feature ?? -1, position: item.position ?? null }];
    const members = [...new Set(refs.map((r) => find(r.layer, r.feature, r.position ?? null)).filter((i) => i >= 0))];
    if (!members.length) continue;
    for (const i of members) if (!pinned.includes(i)) pinned.push(i);
    const settings = { action: item.action, value: item.value ?? 0, allPositions: refs.some((r) => r.position === null || r.position === undefined) };
    if (item.group) {
      const same = groups.findIndex((grp) => membersKey(grp.members) === membersKey(members));
      if (same < 0) groups = groupNodes(groups, members, item.group);
    }
    wanted.push({ members, settings });
  }
  const { units } = aggregate(g, pinned, groups);
  const settings = new Map<string, RowSettings>();
  for (const unit of units) settings.set(unit.key, NO_CHANGE);
  for (const { members, settings: row } of wanted) {
    const unit = units.find((u) => membersKey(u.members) === membersKey(members));
    if (unit) settings.set(unit.key, row);
  }
  return { pinned, groups, settings };
}
