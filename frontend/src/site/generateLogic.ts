// Pure parts of the generate page (tested without a DOM): the request body from the form's
// values, and the sentence that describes a job's view (./followJob.ts keeps the view).

import type { TokenizeResponse } from "../api/types";
import type { JobView } from "./followJob";

const INTEGERS = ["max_n_logits", "max_feature_nodes", "batch_size"];
const FLOATS = ["desired_logit_prob", "node_threshold", "edge_threshold"];

/** One token given as text: kept as typed (leading spaces matter); a bare number is an id. */
function token(text: string): string | number {
  return /^\d+$/.test(text.trim()) ? Number(text.trim()) : text;
}

export function generateRequest(get: (name: string) => string): { body: Record<string, unknown>; errors: Record<string, string> } {
  const body: Record<string, unknown> = { model: get("model"), prompt: get("prompt"), visibility: get("visibility") || "private" };
  const errors: Record<string, string> = {};
  if (!get("prompt").trim()) errors["prompt"] = "Type a prompt.";
  for (const name of ["transcoder_set", "title"]) if (get(name).trim()) body[name] = get(name).trim();
  for (const name of [...INTEGERS, ...FLOATS]) {
    const raw = get(name).trim();
    if (!raw) continue;
    const n = Number(raw);
    if (!Number.isFinite(n) || (INTEGERS.includes(name) && !Number.isInteger(n))) errors[name] = INTEGERS.includes(name) ? "Enter a whole number." : "Enter a number.";
    else body[name] = n;
  }
  const kind = get("target_kind");
  if (kind === "tokens") {
    const tokens = get("target_tokens").split(",").filter((t) => t.trim()).map(token);
    if (!tokens.length) errors["target_tokens"] = "Give at least one output token.";
    else body["target"] = { tokens };
  } else if (kind === "logit_diff") {
    const a = get("target_a");
    const b = get("target_b");
    if (!a.trim()) errors["target_a"] = "Give token A.";
    if (!b.trim()) errors["target_b"] = "Give token B.";
    if (a.trim() && b.trim()) body["target"] = { logit_diff: [token(a), token(b)] };
  }
  return { body, errors };
}

export function describeJob(view: JobView): string {
  switch (view.status) {
    case "queued":
      return view.position ? `Queued: ${view.position === 1 ? "next" : `position ${view.position}`} in line.` : "Queued.";
    case "running":
      return `Running${view.phase ? `: ${view.phase}` : ""} (${Math.round(view.percent ?? 0)}%).`;
    case "succeeded":
      return "Done. Opening the graph…";
    case "failed":
      return `Failed: ${view.error || "no reason given"}`;
    case "cancelled":
      return "Cancelled.";
    default:
      return view.status;
  }
}

/** A long prompt's token preview, collapsed: the first `head` and last `tail` tokens and how
 * many lie between (a 5,000-character prompt is ~900 chips otherwise). */
export function collapseTokens<T>(tokens: T[], head = 60, tail = 20): { head: T[]; hidden: number; tail: T[] } {
  if (tokens.length <= head + tail + 10) return { head: tokens, hidden: 0, tail: [] };
  return { head: tokens.slice(0, head), hidden: tokens.length - head - tail, tail: tokens.slice(-tail) };
}

/** The memory planner's line for a prompt (the tokenize answer's `memory`, docs/engine.md):
 * what an attribution with the defaults needs on the worker, or why it would be refused. */
export function memoryText(memory: TokenizeResponse["memory"]): string {
  if (memory.refusal) return `Memory: ${memory.refusal}`;
  const gb = (n: number): string => (n >= 1e9 ? `${(n / 1e9).toFixed(1)} GB` : `${(n / 1e6).toFixed(1)} MB`);
  const nodes = memory.max_feature_nodes === null ? "all" : String(memory.max_feature_nodes);
  // the sparse ranking is the planner's fallback when the dense one does not fit: slower, same graph
  const ranking = memory.ranking_entries ? `, sparse ranking of ${memory.ranking_entries} entries a row` : "";
  return `Memory: about ${gb(memory.bytes ?? 0)} of the worker's ${gb(memory.budget_bytes)} (batch size ${memory.batch_size ?? "?"}, max_feature_nodes ${nodes}${ranking})`;
}
