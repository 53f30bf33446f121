// The transcoder set page's dashboards form, without the DOM: what is sent, and what the job's
// progress reads as (./dashboards.ts wires it to the page).

import type { ApiError } from "./dom";
import type { JobView } from "./followJob";

export const FIELDS = ["corpus_file", "corpus_path", "max_tokens", "layers", "text_field"] as const;

/** The request the API reads, from the form's data: one corpus, empty inputs left out. */
export function dashboardsRequest(form: FormData): { body: FormData; error: ApiError | null } {
  const body = new FormData();
  const file = form.get("corpus_file");
  const path = String(form.get("corpus_path") ?? "").trim();
  const hasFile = file instanceof Blob && file.size > 0;
  if (hasFile === Boolean(path)) {
    const message = hasFile ? "choose a file or a server path, not both" : "choose a corpus file or give a server path";
    return { body, error: { error: `corpus_file: ${message}`, detail: { corpus_file: message } } };
  }
  if (hasFile) body.append("corpus_file", file);
  else body.append("corpus_path", path);
  const budget = String(form.get("max_tokens") ?? "").trim();
  if (budget) body.append("max_tokens", budget);
  for (const layer of form.getAll("layers")) body.append("layers", String(layer));
  return { body, error: null };
}

const PHASES: Record<string, string> = {
  loading: "loading the model",
  activations: "reading the corpus",
  examples: "collecting the examples",
  outputs: "importing layers",
};

/** One line for the job: its state, its phase in words, and the layers imported so far. */
export function describeDashboards(view: JobView, layers: readonly number[]): string {
  const imported = layers.length ? ` Layers imported: ${layers.join(", ")}.` : "";
  switch (view.status) {
    case "queued":
      return view.position ? `Queued: position ${view.position}.` : "Queued.";
    case "running": {
      const phase = PHASES[view.phase ?? ""] ?? view.phase ?? "";
      return `Running${phase ? `: ${phase}` : ""} (${Math.round(view.percent ?? 0)}%).${imported}`;
    }
    case "succeeded":
      return `Done.${imported}`;
    case "failed":
      return `Failed: ${view.error || "no reason given"}${imported}`;
    case "cancelled":
      return `Cancelled.${imported}`;
    default:
      return view.status;
  }
}

/** The layers a Job row says are imported (its `result.layers`). */
export function importedLayers(result: unknown): number[] {
  if (typeof result !== "object" || result === null) return [];
  const layers = (result as Record<string, unknown>)["layers"];
  return Array.isArray(layers) ? layers.filter((l): l is number => typeof l === "number") : [];
}
