// The graph's own visibility on its page: the owner's control in the bar above the explorer, and
// what the save and share dialogs check against it. A subgraph is seen only by those who can see
// its graph, so an unlisted subgraph of a private graph is a link nobody else can open: the
// dialogs say so, and offer the owner to change the graph.

import { asApiError, sendJson } from "../site/dom";

export type Visibility = "private" | "unlisted" | "public";

const NAMES: Record<Visibility, string> = { private: "private", unlisted: "unlisted", public: "public" };

export function isVisibility(value: unknown): value is Visibility {
  return value === "private" || value === "unlisted" || value === "public";
}

/** What a change of the graph's visibility means, said once it is done. */
export function visibilityDone(v: Visibility): string {
  if (v === "private") return "The graph is now private: only you can open it and its subgraphs.";
  if (v === "unlisted") return "The graph is now unlisted: anyone with a link can open it; it is not listed.";
  return "The graph is now public: it is listed, and anyone can open it.";
}

/**
 * The warning for a subgraph of this visibility on a graph of that one, or null when the
 * subgraph's link reaches whom its visibility promises.
 */
export function reachWarning(graph: Visibility, subgraph: Visibility, canEdit: boolean): string | null {
  if (subgraph === "private" || graph !== "private") return null;
  const ask = canEdit ? "Make the graph unlisted (or public) to share it." : "Ask the graph's owner to make it unlisted.";
  return `This graph is private, so the ${NAMES[subgraph]} subgraph's link opens for nobody but you. ${ask}`;
}

type Listener = (v: Visibility) => void;

/** The graph's visibility as the page knows it, changed through the API (PATCH the graph). */
export class GraphVisibility {
  private listeners: Listener[] = [];

  constructor(
    public value: Visibility,
    readonly canEdit: boolean,
    private readonly url: string,
  ) {}

  subscribe(listener: Listener): void {
    this.listeners.push(listener);
  }

  /** Null when done, else the reason it was not. */
  async change(next: Visibility): Promise<string | null> {
    if (!this.canEdit || !this.url) return "Only the graph's owner can change its visibility.";
    const reply = await sendJson(this.url, "PATCH", { visibility: next });
    if (reply.status !== 200) return asApiError(reply.body, reply.status).error;
    const body = reply.body as { visibility?: unknown };
    this.value = isVisibility(body.visibility) ? body.visibility : next;
    for (const listener of this.listeners) listener(this.value);
    return null;
  }
}

/** The bar above the explorer: its data and, for the owner, the visibility select. */
export function setUpGraphVisibility(bar: HTMLElement): GraphVisibility {
  const initial = bar.dataset["visibility"];
  const state = new GraphVisibility(isVisibility(initial) ? initial : "private", bar.dataset["canEdit"] === "1", bar.dataset["graphApiUrl"] ?? "");
  const select = bar.querySelector<HTMLSelectElement>("#graph-visibility");
  const status = bar.querySelector<HTMLElement>(".graph-visibility-status");
  if (select) {
    select.addEventListener("change", async () => {
      const next = select.value;
      if (!isVisibility(next)) return;
      select.disabled = true;
      const error = await state.change(next);
      select.disabled = false;
      if (error) {
        select.value = state.value;
        if (status) status.textContent = error;
        status?.classList.add("bad");
      }
    });
  }
  state.subscribe((v) => {
    if (select) select.value = v;
    if (status) {
      status.textContent = visibilityDone(v);
      status.classList.remove("bad");
    }
  });
  return state;
}
