// The generate page: live tokenization (debounced), advanced settings, a target, then submit
// and follow the job (./followJob.ts: its websocket, polling if that drops) until the graph is
// stored, and open it. Batch mode (a list of prompts) is ./batchForm.ts.

import type { TokenizeResponse } from "../api/types";
import { JOB_PARAMS } from "../contract.gen";
import { setUpBatch } from "./batchForm";
import { asApiError, clearErrors, el, sendJson, showErrors, type ApiError } from "./dom";
import { followJob, isFinal, jobTick, type JobView } from "./followJob";
import { collapseTokens, describeJob, generateRequest, memoryText } from "./generateLogic";

const FIELDS = ["model", "transcoder_set", "prompt", "title", "visibility", "target", "max_n_logits", "desired_logit_prob", "max_feature_nodes", "node_threshold", "edge_threshold", "batch_size", "slug"] as const;
const TOKENIZE_DELAY_MS = 300;

function value(form: HTMLFormElement, name: string): string {
  const input = form.elements.namedItem(name);
  return input instanceof HTMLInputElement || input instanceof HTMLSelectElement || input instanceof HTMLTextAreaElement ? input.value : "";
}

function control(form: HTMLFormElement, name: string): HTMLElement | null {
  const item = form.elements.namedItem(name);
  return item instanceof HTMLElement ? item : null;
}

function setUpTokenizer(form: HTMLFormElement): void {
  const status = document.getElementById("token-status")!;
  const list = document.getElementById("token-list")!;
  const top = document.getElementById("top-list")!;
  let timer: ReturnType<typeof setTimeout> | null = null;
  let asked = 0;
  const run = async (): Promise<void> => {
    const prompt = value(form, "prompt");
    const model = value(form, "model");
    const mine = ++asked;
    if (!prompt.trim() || !model) {
      status.textContent = "Type a prompt to see its tokens.";
      list.replaceChildren();
      top.replaceChildren();
      return;
    }
    status.textContent = "Tokenizing…";
    let reply: { status: number; body: unknown };
    try {
      reply = await sendJson(form.dataset["tokenizeUrl"] ?? "/api/v1/tokenize", "POST", { model, prompt, top_k: JOB_PARAMS.tokenize.top_k.default });
    } catch {
      reply = { status: 0, body: null };
    }
    if (mine !== asked) return; // a newer prompt was typed meanwhile
    if (reply.status !== 200) {
      status.textContent = reply.status === 503 ? "No worker answered: tokens appear once a worker for this model runs." : asApiError(reply.body, reply.status).error;
      return;
    }
    const body = reply.body as TokenizeResponse;
    const over = body.n_tokens > body.max_prompt_tokens;
    status.textContent = `${body.n_tokens} tokens (at most ${body.max_prompt_tokens})${over ? ": too long" : ""}`;
    status.classList.toggle("bad", over || Boolean(body.memory.refusal));
    status.append(el("br"), el("span", "memory-estimate", memoryText(body.memory)));
    const chip = (t: { id: number; text: string }): HTMLElement => {
      const span = el("span", "token-chip", t.text.replace(/\n/g, "⏎"));
      span.title = `id ${t.id}`;
      return span;
    };
    const parts = collapseTokens(body.tokens);
    if (parts.hidden) {
      const more = el("button", "button small token-more", `Show all ${body.tokens.length} tokens (${parts.hidden} more)`);
      more.type = "button";
      more.addEventListener("click", () => list.replaceChildren(...body.tokens.map(chip)));
      list.replaceChildren(...parts.head.map(chip), more, ...parts.tail.map(chip));
    } else {
      list.replaceChildren(...parts.head.map(chip));
    }
    top.replaceChildren(...body.top.map((t) => {
      const row = el("tr");
      const token = el("td");
      token.append(el("code", "", JSON.stringify(t.token)));
      const bar = el("td", "prob");
      const fill = el("span", "prob-bar");
      fill.style.width = `${Math.round(100 * t.prob)}%`;
      bar.append(fill, el("span", "", `${(100 * t.prob).toFixed(1)}%`));
      row.append(token, bar);
      return row;
    }));
  };
  const schedule = (): void => {
    if (timer !== null) clearTimeout(timer);
    timer = setTimeout(() => void run(), TOKENIZE_DELAY_MS);
  };
  control(form, "prompt")?.addEventListener("input", schedule);
  control(form, "model")?.addEventListener("change", schedule);
  if (value(form, "prompt")) schedule();
}

function setUpChoices(form: HTMLFormElement): void {
  const sets = form.elements.namedItem("transcoder_set") as HTMLSelectElement | null;
  const kind = form.elements.namedItem("target_kind") as HTMLSelectElement | null;
  const showSets = (): void => {
    const model = value(form, "model");
    for (const option of sets?.options ?? []) option.hidden = option.value !== "" && !option.text.startsWith(`${model} /`);
    if (sets && sets.selectedOptions[0]?.hidden) sets.value = "";
  };
  const showTarget = (): void => {
    const k = kind?.value ?? "top";
    const toggle = (name: string, on: boolean): void => {
      const field = form.querySelector<HTMLElement>(`[data-field="${name}"]`);
      if (field) field.hidden = !on;
    };
    toggle("target_tokens", k === "tokens");
    toggle("target_a", k === "logit_diff");
    toggle("target_b", k === "logit_diff");
  };
  control(form, "model")?.addEventListener("change", showSets);
  kind?.addEventListener("change", showTarget);
  showSets();
  showTarget();
}

const POLL_MS = 2000;

function follow(job: JobView, section: HTMLElement): void {
  const bar = document.getElementById("job-bar") as HTMLProgressElement;
  const status = document.getElementById("job-status")!;
  const cancel = document.getElementById("job-cancel") as HTMLButtonElement;
  let view: JobView = job;
  const render = (next: JobView): void => {
    view = next;
    bar.value = view.percent ?? 0;
    status.textContent = describeJob(view);
    status.classList.toggle("bad", view.status === "failed");
    cancel.hidden = isFinal(view);
    if (view.status === "succeeded" && view.graph?.page_url) location.assign(view.graph.page_url);
  };
  section.hidden = false;
  render(job);
  const following = followJob(job, render, { pollMs: POLL_MS });
  cancel.addEventListener("click", () => {
    cancel.disabled = true;
    void sendJson(`${job.url}/cancel`, "POST", {}).then((reply) => {
      if (reply.status === 200) {
        render(jobTick(view, { type: "cancelled", job: view.id }));
        following.stop();
      } else {
        render(view);
      }
    });
  });
}

/**
 * Tokenize the target's texts (and each with a leading space) before submitting, and say what
 * each becomes. The API checks targets from the tokenize cache this fills (jobs/tokens.py), so a
 * target of several tokens, or a word missing its leading space, is refused before it is queued.
 */
async function tokenizeTargets(form: HTMLFormElement, body: Record<string, unknown>): Promise<void> {
  const note = document.getElementById("target-tokens-note");
  const target = body["target"] as { tokens?: unknown[]; logit_diff?: unknown[] } | undefined;
  const texts = [...(target?.tokens ?? []), ...(target?.logit_diff ?? [])].filter((t): t is string => typeof t === "string");
  if (note) note.textContent = "";
  if (!texts.length) return;
  const url = form.dataset["tokenizeUrl"] ?? "/api/v1/tokenize";
  const model = value(form, "model");
  const ask = async (prompt: string): Promise<TokenizeResponse | null> => {
    try {
      const reply = await sendJson(url, "POST", { model, prompt, top_k: JOB_PARAMS.tokenize.top_k.default });
      return reply.status === 200 ? (reply.body as TokenizeResponse) : null;
    } catch {
      return null;
    }
  };
  const lines = await Promise.all(texts.map(async (text) => {
    const [plain] = await Promise.all([ask(text), /^\s/.test(text) ? null : ask(` ${text}`)]);
    const pieces = plain?.tokens.slice(1) ?? [];
    return pieces.length ? `${JSON.stringify(text)} → ${pieces.map((t) => `${JSON.stringify(t.text)} (id ${t.id})`).join(" + ")}` : "";
  }));
  if (note) note.textContent = lines.filter(Boolean).join("; ");
}

/** The API's error under the form's fields; the target's ("target.tokens[0]") under its inputs. */
function showApiError(form: HTMLFormElement, top: HTMLUListElement, error: ApiError): void {
  const kind = value(form, "target_kind");
  const detail: Record<string, string> = {};
  for (const [k, v] of Object.entries(error.detail)) detail[k.startsWith("target") ? (kind === "logit_diff" ? "target_a" : "target_tokens") + k.slice(6) : k] = v;
  showErrors(form, top, { ...error, detail }, [...FIELDS, "target_tokens", "target_a", "target_b"]);
}

function setUp(form: HTMLFormElement): void {
  const top = document.getElementById("generate-errors") as HTMLUListElement;
  const section = document.getElementById("job-progress")!;
  const button = document.getElementById("generate-submit") as HTMLButtonElement;
  setUpChoices(form);
  setUpTokenizer(form);
  const batch = setUpBatch(form, {
    value: (name) => value(form, name),
    showError: (error) => showApiError(form, top, error),
    beforeSend: (body) => tokenizeTargets(form, body),
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (batch.active()) {
      void batch.submit();
      return;
    }
    clearErrors(form);
    const { body, errors } = generateRequest((name) => value(form, name));
    if (Object.keys(errors).length) {
      showErrors(form, top, { error: "Check the highlighted fields.", detail: errors }, [...FIELDS, "target_tokens", "target_a", "target_b"]);
      return;
    }
    button.disabled = true;
    void tokenizeTargets(form, body).then(() => sendJson(form.dataset["generateUrl"] ?? "/api/v1/graphs/generate", "POST", body)).then((reply) => {
      button.disabled = false;
      if (reply.status !== 202 && reply.status !== 201) {
        showApiError(form, top, asApiError(reply.body, reply.status));
        return;
      }
      top.hidden = true;
      follow(reply.body as JobView, section);
      section.scrollIntoView({ behavior: "smooth", block: "center" });
    });
  });
}

const form = document.getElementById("generate-form");
if (form instanceof HTMLFormElement) setUp(form);
