// The footer's service indicator: a one-line summary of /healthz.

export interface HealthSummary {
  ok: boolean;
  text: string;
}

export function summarizeHealth(status: number, body: unknown): HealthSummary {
  if (typeof body !== "object" || body === null || !("down" in body)) {
    return { ok: false, text: `services: unexpected answer (HTTP ${status})` };
  }
  const down = (body as { down: unknown }).down;
  if (!Array.isArray(down) || !down.every((name) => typeof name === "string")) {
    return { ok: false, text: `services: unexpected answer (HTTP ${status})` };
  }
  if (status === 200 && down.length === 0) {
    return { ok: true, text: "services: all up" };
  }
  return { ok: false, text: `services down: ${down.join(", ") || "unknown"}` };
}

export async function showHealth(element: HTMLElement): Promise<void> {
  const url = element.dataset["healthzUrl"];
  if (!url) return;
  try {
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    const summary = summarizeHealth(response.status, await response.json());
    element.textContent = summary.text;
    element.classList.toggle("is-down", !summary.ok);
  } catch {
    element.textContent = "services: unreachable";
    element.classList.add("is-down");
  }
}
