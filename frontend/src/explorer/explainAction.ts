// "Explain this graph's features": queue an explain job for every feature node of the graph
// (POST /api/v1/explain, token patterns; docs/explanations.md), follow it, and when it is done
// let the page reload the features' explanations so the nodes get their names.

import type { components } from "../api/schema";
import { asApiError, el, sendJson } from "../site/dom";
import { followJob, type JobView } from "../site/followJob";

type Job = components["schemas"]["Job"];

export interface ExplainOptions {
  explainUrl: string;
  model: string;
  set: string;
  graphSlug: string;
  /** Called once the job succeeded: fetch the explanations again. */
  onDone: () => void;
}

export function jobView(job: Job): JobView {
  const { id, status, phase, percent, position, error, graph, url, websocket } = job;
  return { id, status, phase, percent, position, error, graph, url, websocket };
}

export function setUpExplainAction(element: HTMLElement, options: ExplainOptions): void {
  element.classList.add("explain-action");
  const button = el("button", "button small", "Explain this graph's features");
  button.type = "button";
  button.title = "Write and score an explanation of every feature in this graph (token patterns, on the server)";
  const status = el("span", "meta explain-status");
  status.setAttribute("role", "status");
  element.append(button, status);

  button.addEventListener("click", async () => {
    button.disabled = true;
    status.textContent = "Queueing…";
    try {
      const reply = await sendJson(options.explainUrl, "POST", {
        model: options.model,
        ...(options.set ? { transcoder_set: options.set } : {}),
        graph: options.graphSlug,
        method: "token-pattern",
      });
      if (reply.status !== 202) {
        status.textContent = asApiError(reply.body, reply.status).error;
        return;
      }
      const job = reply.body as Job;
      const following = followJob(jobView(job), (view) => {
        status.textContent = view.status === "running" ? `Explaining… ${Math.round(view.percent)}%` : view.status === "queued" ? "Queued…" : "";
      }, { pollMs: 2000 });
      const finished = await following.finished;
      if (finished.status !== "succeeded") {
        status.textContent = finished.error || `The job ${finished.status}.`;
        return;
      }
      const row = await sendJson(job.url, "GET", undefined);
      const result = (row.body as Job).result as { summary?: string } | null;
      status.textContent = result?.summary ? `Done: ${result.summary}.` : "Done.";
      options.onDone();
    } catch {
      status.textContent = "The server could not be reached; try again.";
    } finally {
      button.disabled = false;
    }
  });
}
