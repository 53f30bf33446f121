// Small helpers the page scripts share: CSRF, JSON requests, elements built with textContent
// (labels and user text are never parsed as HTML), and API errors shown next to their fields.

export function el<K extends keyof HTMLElementTagNameMap>(tag: K, className = "", text = ""): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text) node.textContent = text;
  return node;
}

export function csrfToken(root: ParentNode = document): string {
  const input = root.querySelector<HTMLInputElement>("input[name=csrfmiddlewaretoken]");
  return input?.value ?? "";
}

/** The API's error shape: {"error": sentence, "detail": {field: message}}. */
export interface ApiError {
  error: string;
  detail: Record<string, string>;
}

export function asApiError(body: unknown, status: number): ApiError {
  const fallback = `The server answered ${status}.`;
  if (typeof body !== "object" || body === null) return { error: fallback, detail: {} };
  const b = body as Record<string, unknown>;
  const detail: Record<string, string> = {};
  if (typeof b["detail"] === "object" && b["detail"] !== null) {
    for (const [k, v] of Object.entries(b["detail"] as Record<string, unknown>)) detail[k] = String(v);
  }
  return { error: typeof b["error"] === "string" ? b["error"] : fallback, detail };
}

export async function sendJson(url: string, method: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: unknown }> {
  const response = await fetch(url, {
    method,
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken(), ...headers },
    body: body === undefined ? null : JSON.stringify(body),
  });
  let parsed: unknown = null;
  try {
    parsed = response.status === 204 ? null : await response.json();
  } catch {
    parsed = null;
  }
  return { status: response.status, body: parsed };
}

/** The form field an API error key belongs to: "file", "target.tokens[0]" → "target", ... */
export function fieldOf(key: string, fields: readonly string[]): string | null {
  const head = key.split(/[.[]/, 1)[0] ?? "";
  return fields.includes(head) ? head : null;
}

export function clearErrors(form: HTMLElement): void {
  for (const list of form.querySelectorAll<HTMLUListElement>(".field-errors, .form-errors")) {
    list.replaceChildren();
    list.hidden = true;
  }
  for (const field of form.querySelectorAll(".field.has-error")) field.classList.remove("has-error");
}

/** Shows an API error: messages under their fields, the rest (and the sentence) at the top. */
export function showErrors(form: HTMLElement, top: HTMLUListElement, error: ApiError, fields: readonly string[], fallbackField: string | null = null): void {
  clearErrors(form);
  const general: string[] = [];
  for (const [key, message] of Object.entries(error.detail)) {
    const name = fieldOf(key, fields) ?? (key === "non_field_errors" ? null : fallbackField);
    const list = name ? form.querySelector<HTMLUListElement>(`[data-field="${name}"] .field-errors, #id_${name}-errors`) : null;
    if (list && name) {
      // A key deeper than the field (a path inside an uploaded file) is shown with its path.
      list.append(el("li", "", key === name ? message : `${key}: ${message}`));
      list.hidden = false;
      list.closest(".field")?.classList.add("has-error");
    } else {
      general.push(key === "non_field_errors" ? message : `${key}: ${message}`);
    }
  }
  // The sentence repeats the first field error: say it once, next to its field.
  const placed = Object.keys(error.detail).length > general.length;
  const lead = placed && !general.length ? "Fix the problems marked below." : error.error;
  top.replaceChildren(el("li", "", lead), ...general.map((m) => el("li", "", m)));
  top.hidden = false;
}
