// The generate page's batch mode: a list of prompts (typed, pasted or read from a .txt file),
// one graph each with the same settings, checked here (./batchLogic.ts) and then by the API,
// which refuses the whole list, naming each line, before it queues anything. A queued batch
// opens on My jobs (/me/jobs?batch=<id>), which follows its jobs (./batch.ts).

import { asApiError, clearErrors, el, sendJson, type ApiError } from "./dom";
import { batchErrors, maxListBytes, parseBatch, type BatchLimits, type BatchResponse } from "./batchLogic";
import { generateRequest } from "./generateLogic";

const SHOWN_CHARS = 200;

export interface BatchHooks {
  /** The form's value of a field (the generate page's reader). */
  value: (name: string) => string;
  /** Shows an API error under the page's fields (the generate page's, targets included). */
  showError: (error: ApiError) => void;
  /** Runs before the request, as for one prompt (the targets' tokens). */
  beforeSend: (body: Record<string, unknown>) => Promise<void>;
}

/** Messages under one field, after those already there. */
function addFieldErrors(form: HTMLFormElement, name: string, messages: string[]): void {
  const list = form.querySelector<HTMLUListElement>(`#id_${name}-errors`);
  if (!list || !messages.length) return;
  list.append(...messages.map((m) => el("li", "", m)));
  list.hidden = false;
  list.closest(".field")?.classList.add("has-error");
}

function limitsOf(form: HTMLFormElement): BatchLimits {
  return { maxPrompts: Number(form.dataset["batchMaxPrompts"] ?? 100), maxChars: Number(form.dataset["maxPromptChars"] ?? 8000) };
}

/** Sets up the mode switch, the list's preview and its file input; `active()` says whether the
 * page is in batch mode, `submit()` sends the list. */
export function setUpBatch(form: HTMLFormElement, hooks: BatchHooks): { active: () => boolean; submit: () => Promise<void> } {
  const limits = limitsOf(form);
  const textarea = form.elements.namedItem("prompts") as HTMLTextAreaElement | null;
  const file = form.elements.namedItem("prompts_file") as HTMLInputElement | null;
  const button = document.getElementById("generate-submit") as HTMLButtonElement;
  const status = document.getElementById("batch-status");
  const list = document.getElementById("batch-list");
  const top = document.getElementById("generate-errors") as HTMLUListElement;
  const single = button.textContent ?? "Generate graph";
  const active = (): boolean => form.querySelector<HTMLInputElement>('input[name="mode"]:checked')?.value === "batch";

  const preview = (): void => {
    form.classList.toggle("batch-mode", active());
    if (!active()) {
      button.textContent = single;
      return;
    }
    const { lines, errors } = parseBatch(textarea?.value ?? "", limits);
    list?.replaceChildren(...lines.slice(0, limits.maxPrompts + 10).map(({ line, text }) => {
      const item = el("li", text.length > limits.maxChars ? "bad" : "", text.length > SHOWN_CHARS ? `${text.slice(0, SHOWN_CHARS)}…` : text);
      item.value = line;
      return item;
    }));
    if (status) {
      status.textContent = errors[0] ?? `${lines.length} prompt${lines.length === 1 ? "" : "s"} (at most ${limits.maxPrompts}); the API checks each against the model's token limit before it queues any.`;
      status.classList.toggle("bad", Boolean(lines.length && errors.length));
    }
    button.textContent = lines.length > 1 ? `Generate ${lines.length} graphs` : "Generate graph";
  };

  const readFile = async (): Promise<void> => {
    const chosen = file?.files?.[0];
    if (!chosen || !textarea) return;
    clearErrors(form);
    const most = maxListBytes(limits);
    const text = chosen.size > most ? null : await chosen.text();
    if (text === null || text.includes("\u0000")) {
      const why = text === null ? `it is ${(chosen.size / 1e6).toFixed(1)} MB; a list of ${limits.maxPrompts} prompts fits in ${(most / 1e6).toFixed(1)} MB` : "it is not a text file";
      addFieldErrors(form, "prompts_file", [`${chosen.name}: ${why}.`]);
      file.value = "";
      return;
    }
    textarea.value = text.replace(/^\ufeff/, ""); // a byte-order mark is no part of line 1
    file.value = "";
    preview();
  };

  const submit = async (): Promise<void> => {
    clearErrors(form);
    const { body, errors } = generateRequest(hooks.value);
    delete errors["prompt"];
    delete body["prompt"];
    delete body["title"]; // one title for many graphs would tell them apart by nothing
    const { lines, errors: listErrors } = parseBatch(textarea?.value ?? "", limits);
    if (Object.keys(errors).length || listErrors.length) {
      hooks.showError({ error: "Check the highlighted fields.", detail: errors });
      addFieldErrors(form, "prompts", listErrors);
      return;
    }
    body["prompts"] = lines.map((l) => l.text);
    button.disabled = true;
    await hooks.beforeSend(body);
    const reply = await sendJson(form.dataset["batchUrl"] ?? "/api/v1/graphs/generate-batch", "POST", body).catch(() => ({ status: 0, body: null }));
    button.disabled = false;
    if (reply.status !== 202) {
      const error = asApiError(reply.body, reply.status);
      const { prompts, others } = batchErrors(error.detail, lines);
      hooks.showError({ error: prompts.length ? "Nothing was queued: fix the lines named below." : error.error, detail: others });
      addFieldErrors(form, "prompts", prompts);
      return;
    }
    top.hidden = true;
    const batch = reply.body as BatchResponse;
    location.assign(`${form.dataset["jobsUrl"] ?? "/me/jobs"}?batch=${encodeURIComponent(batch.batch_id)}`);
  };

  for (const radio of form.querySelectorAll<HTMLInputElement>('input[name="mode"]')) radio.addEventListener("change", preview);
  textarea?.addEventListener("input", preview);
  file?.addEventListener("change", () => void readFile());
  preview();
  return { active, submit };
}
