// The Test panel's logic, kept pure so it is tested without a page: which rows the pinned
// subgraph gives (one per supernode or pinned feature), the API request they make, and how a
// run's result reads (before/after bars, the changed activations, a one-line summary).

import type { components } from "../api/schema";
import { Kind, type Graph } from "./graph";
import type { ExplorerState } from "./state";
import { aggregate } from "./supernodes";

type Schemas = components["schemas"];
export type InterventionRequest = Schemas["InterventionRequest"];
export type InterveneRequest = Schemas["InterveneRequestRequest"];
export type SteerRequest = Schemas["SteerRequestRequest"];
export type SteeringRun = Schemas["SteeringRun"];
export type InterveneResult = Schemas["InterveneResult"];
export type SteerResult = Schemas["SteerResult"];
export type Action = Schemas["ActionEnum"];

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
    const fallback = first.kind === Kind.Feature ? `L${first.layer}/${first.feature ?? "?"}@${first.ctx}` : first.id;
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

/** The API's interventions for the rows that have features: groups as groups, the rest single. */
export function interventionsFor(rows: readonly TestRow[]): InterventionRequest[] {
  const out: InterventionRequest[] = [];
  for (const row of rows) {
    if (!row.members.length) continue;
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

function describe(item: InterventionRequest): string {
  const what = item.group ? `${item.group} (${item.features?.length ?? 0})` : `L${item.layer}/${item.feature}`;
  const where = item.group ? "" : item.position === null ? " everywhere" : `@${item.position}`;
  const how = item.action === "ablate" ? "ablate" : item.action === "scale" ? `×${item.value}` : `=${item.value}`;
  return `${how} ${what}${where}`;
}

/** One line for the history: what was done, how, and what came of it. */
export function summary(run: SteeringRun): string {
  const items = run.interventions.map(describe);
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
