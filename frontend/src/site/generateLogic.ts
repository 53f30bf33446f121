// Pure parts of the generate page (tested without a DOM): the request body from the form's
// values, and a job view folded from websocket events (docs/jobs.md, "Websocket").

export interface JobView {
  id: string;
  status: string;
  phase: string;
  percent: number;
  position: number | null;
  error: string;
  graph: { page_url: string } | null;
  url: string;
  websocket: string;
}

export type JobEvent = { type: string; job: string } & Partial<Omit<JobView, "id">> & { message?: string };

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

const FINAL = new Set(["succeeded", "failed", "cancelled"]);

/** The job after one event; percent never goes back (an event may be older than `state`). */
export function jobTick(view: JobView, event: JobEvent): JobView {
  if (FINAL.has(view.status)) return view;
  const next: JobView = { ...view };
  const percent = (p: unknown): void => {
    if (typeof p === "number" && Number.isFinite(p)) next.percent = Math.max(next.percent ?? 0, Math.min(100, p));
  };
  switch (event.type) {
    case "state":
      if (typeof event.status === "string") next.status = event.status;
      if (typeof event.phase === "string") next.phase = event.phase;
      percent(event.percent);
      next.position = event.position ?? null;
      if (typeof event.error === "string") next.error = event.error;
      if (event.graph) next.graph = event.graph;
      break;
    case "queued":
      next.position = event.position ?? null;
      break;
    case "running":
      next.status = "running";
      next.position = null;
      break;
    case "progress":
      next.status = "running";
      if (typeof event.phase === "string") next.phase = event.phase;
      percent(event.percent);
      break;
    case "requeued":
      next.status = "queued";
      next.phase = "";
      break;
    case "done":
      next.status = "succeeded";
      next.percent = 100;
      if (event.graph) next.graph = event.graph;
      break;
    case "failed":
      next.status = "failed";
      next.error = event.message ?? next.error ?? "";
      break;
    case "cancelled":
      next.status = "cancelled";
      break;
  }
  return next;
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
