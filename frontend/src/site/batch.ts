// A batch on My jobs (/me/jobs?batch=<id>): while any of its jobs is queued or running, poll
// GET /api/v1/batches/<id> (one request for up to JOBS_BATCH_MAX_PROMPTS jobs, where a socket
// per job would be a hundred) and update each row's status, progress and link. Once every job
// has ended the page is loaded again, so its rows get their final actions (Re-run) from the
// server's own template.

import { el, sendJson } from "./dom";
import { batchActive, batchCounts, jobStatusText, type BatchJob, type BatchResponse } from "./batchLogic";

const POLL_MS = 2000;

function updateRow(row: HTMLTableRowElement, job: BatchJob): void {
  row.className = `job-${job.status}`;
  const cell = row.querySelector<HTMLElement>(".job-status");
  if (cell) {
    const parts: Node[] = [document.createTextNode(jobStatusText(job))];
    if (job.status === "running") {
      const bar = el("progress", "job-bar");
      bar.max = 100;
      bar.value = job.percent ?? 0;
      parts.unshift(bar, document.createTextNode(" "));
    }
    cell.replaceChildren(...parts);
  }
  const prompt = row.querySelector<HTMLElement>(".job-prompt");
  const first = prompt?.firstChild;
  if (job.graph?.page_url && first && !(first instanceof HTMLAnchorElement)) {
    const link = el("a", "", first.textContent ?? "");
    link.href = job.graph.page_url;
    first.replaceWith(link);
  }
  if (job.status !== "queued" && job.status !== "running") row.querySelector(".row-actions form")?.remove();
}

function setUp(table: HTMLTableElement): void {
  const url = table.dataset["batchUrl"];
  const counts = document.getElementById("batch-counts");
  if (!url) return;
  const tick = async (): Promise<void> => {
    let reply: { status: number; body: unknown };
    try {
      reply = await sendJson(url, "GET", undefined);
    } catch {
      reply = { status: 0, body: null };
    }
    if (reply.status === 200) {
      const batch = reply.body as BatchResponse;
      for (const job of batch.jobs) {
        const row = table.querySelector<HTMLTableRowElement>(`tr[data-job="${CSS.escape(job.id)}"]`);
        if (row) updateRow(row, job);
      }
      if (counts) counts.textContent = batchCounts(batch.counts);
      if (!batchActive(batch)) {
        location.reload();
        return;
      }
    }
    // A failed poll (the server restarting, a dropped connection) is tried again.
    setTimeout(() => void tick(), POLL_MS);
  };
  setTimeout(() => void tick(), POLL_MS);
}

const table = document.getElementById("job-table");
if (table instanceof HTMLTableElement) setUp(table);
