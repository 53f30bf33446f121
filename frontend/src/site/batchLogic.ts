// Pure parts of batch generation (tested without a DOM): the prompt list from a textarea or a
// .txt file, what is wrong with it before anything is sent, the API's per-prompt errors as line
// numbers, and how a batch's jobs read on My jobs (../../jobs/templates/jobs/jobs.html says the
// same for the first render).

import type { components } from "../api/schema";

type Schemas = components["schemas"];
export type BatchResponse = Schemas["BatchResponse"];
export type BatchJob = Schemas["Job"];

export interface BatchLimits {
  /** JOBS_BATCH_MAX_PROMPTS: prompts in one batch. */
  maxPrompts: number;
  /** JOBS_MAX_PROMPT_CHARS: characters in one prompt. */
  maxChars: number;
}

/** One prompt and the line of the list it is on (1-based, blank lines counted). */
export interface BatchLine {
  line: number;
  text: string;
}

/**
 * The prompts of a list, one a line, blank lines skipped, each kept as typed (a leading space
 * changes the tokens); and what would make the API refuse it, each message naming its line or
 * the limit. Nothing is sent while `errors` is not empty.
 */
export function parseBatch(text: string, limits: BatchLimits): { lines: BatchLine[]; errors: string[] } {
  const lines: BatchLine[] = [];
  text.split(/\r\n|\n|\r/).forEach((raw, i) => {
    if (raw.trim()) lines.push({ line: i + 1, text: raw });
  });
  const errors: string[] = [];
  if (!lines.length) errors.push("Give at least one prompt, one per line.");
  if (lines.length > limits.maxPrompts) errors.push(`${lines.length} prompts: at most ${limits.maxPrompts} in one batch (JOBS_BATCH_MAX_PROMPTS).`);
  for (const { line, text: prompt } of lines) {
    if (prompt.length > limits.maxChars) errors.push(`Line ${line}: ${prompt.length} characters; a prompt has at most ${limits.maxChars}.`);
  }
  return { lines, errors };
}

/** The most bytes a prompt list can take (every prompt at its longest, plus its newline). */
export function maxListBytes(limits: BatchLimits): number {
  // Characters outside ASCII take up to 4 bytes in UTF-8.
  return limits.maxPrompts * (4 * limits.maxChars + 2);
}

/** The API's 400 for a batch, split into messages for the prompt list (`prompts`, and
 * `prompts[i]` as the line prompt i came from) and the other fields' errors. */
export function batchErrors(detail: Record<string, string>, lines: BatchLine[]): { prompts: string[]; others: Record<string, string> } {
  const prompts: string[] = [];
  const others: Record<string, string> = {};
  for (const [key, message] of Object.entries(detail)) {
    const match = /^prompts(?:\[(\d+)\])?$/.exec(key);
    if (!match) {
      others[key] = message;
    } else if (match[1] === undefined) {
      prompts.push(message);
    } else {
      const line = lines[Number(match[1])]?.line;
      prompts.push(line === undefined ? `Prompt ${Number(match[1]) + 1}: ${message}` : `Line ${line}: ${message}`);
    }
  }
  return { prompts, others };
}

const LABELS: Record<string, string> = { queued: "Queued", running: "Running", succeeded: "Succeeded", failed: "Failed", cancelled: "Cancelled" };

/** A job's status cell, as jobs.html renders it: "Running: features (42%)". */
export function jobStatusText(job: Pick<BatchJob, "status" | "phase" | "percent">): string {
  const label = LABELS[job.status] ?? job.status;
  return job.status === "running" && job.phase ? `${label}: ${job.phase} (${Math.round(job.percent ?? 0)}%)` : label;
}

/** "2 queued, 1 running, 3 succeeded", in lifecycle order. */
export function batchCounts(counts: Record<string, number>): string {
  const order = Object.keys(LABELS);
  const rank = (status: string): number => (order.includes(status) ? order.indexOf(status) : order.length);
  return Object.entries(counts)
    .filter(([, n]) => n > 0)
    .sort(([a], [b]) => rank(a) - rank(b))
    .map(([status, n]) => `${n} ${status}`)
    .join(", ");
}

/** Whether a batch still has work: the page keeps following it until every job ended. */
export function batchActive(batch: { jobs: readonly Pick<BatchJob, "status">[] }): boolean {
  return batch.jobs.some((job) => job.status === "queued" || job.status === "running");
}
