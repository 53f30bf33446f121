// "Suggest supernodes" in the subgraph panel: asks the suggestions endpoint about the pinned
// features (or, with none pinned, the features the pruned view shows), outlines each suggested
// group on a canvas over the link graph in its own colour, and lists them to accept or reject, one
// by one or all at once. An accepted suggestion becomes an ordinary supernode in the store (so it
// is saved, linked and shared like a hand-made one); Undo (or Ctrl/Cmd+Z) takes decisions back.
// The review itself is not in the URL: it is a preview. Text from the server is set with textContent.

import { asApiError, el, sendJson } from "../site/dom";
import type { SuggestionRequest } from "../api/types";
import { clearedOverlay, fitViewport } from "./linkGraph";
import type { ExplorerState, ExplorerStore } from "./state";
import { formatNumber, nodeRadius } from "./style";
import { canAccept, canUndo, decide, emptyReview, parseSuggestions, pending, requestScope, startReview, undoLast, type Review, type Suggestion, type Supernodes } from "./suggestions";

export interface SuggestOptions {
  url: string; // POST /api/v1/graphs/{model}/{slug}/supernode-suggestions
  bar: HTMLElement; // the subgraph panel's button bar, where "Suggest supernodes" goes
  graphEl: HTMLElement; // the link graph, which the preview covers
}

const DEFAULT_THRESHOLD = "0.2"; // the endpoint's default (analysis.supernodes.Settings)

const supernodesOf = (s: ExplorerState): Supernodes => ({ pinned: s.pinned, groups: s.groups });

function paintPreview(canvas: HTMLCanvasElement, s: ExplorerState, review: Review, focused: number): void {
  const cleared = clearedOverlay(canvas);
  if (!cleared) return;
  const { ctx, width, height } = cleared;
  const vp = s.viewport ?? fitViewport(s, width, height);
  const { x, y } = s.view.layout;
  const r = nodeRadius(vp.k) + 3;
  for (const k of pending(review)) {
    const suggestion = review.suggestions[k]!;
    const points = suggestion.members.filter((i) => s.view.visible[i] === 1).map((i) => [(x[i]! - vp.x) * vp.k, (y[i]! - vp.y) * vp.ky] as const);
    if (!points.length) continue;
    // The one in focus stands out; the others stay visible, fainter.
    ctx.globalAlpha = focused < 0 || focused === k ? 1 : 0.35;
    ctx.strokeStyle = suggestion.colour;
    ctx.lineWidth = focused === k ? 3.5 : 2.5;
    ctx.setLineDash([]);
    ctx.beginPath();
    for (const [cx, cy] of points) {
      ctx.moveTo(cx + r, cy);
      ctx.arc(cx, cy, r, 0, 2 * Math.PI);
    }
    ctx.stroke();
    // A dashed box round the members says which rings are one group.
    const xs = points.map((p) => p[0]);
    const ys = points.map((p) => p[1]);
    const pad = r + 4;
    ctx.setLineDash([5, 3]);
    ctx.lineWidth = focused === k ? 2 : 1.25;
    ctx.beginPath();
    ctx.roundRect(Math.min(...xs) - pad, Math.min(...ys) - pad, Math.max(...xs) - Math.min(...xs) + 2 * pad, Math.max(...ys) - Math.min(...ys) + 2 * pad, 6);
    ctx.stroke();
  }
  ctx.globalAlpha = 1;
  ctx.setLineDash([]);
}

function where(s: ExplorerState, suggestion: Suggestion): string {
  const [l0, l1] = suggestion.layers;
  const [p0, p1] = suggestion.positions;
  const token = (p: number): string => `“${s.graph.metadata.promptTokens[p] ?? p}”`;
  const layers = l0 === l1 ? `L${l0}` : `L${l0}–L${l1}`;
  return `${layers} at ${p0 === p1 ? token(p0) : `${token(p0)}–${token(p1)}`}`;
}

function button(text: string, name: string, className = "node-action"): HTMLButtonElement {
  const b = el("button", className, text);
  b.type = "button";
  b.name = name;
  return b;
}

export function setUpSuggestions(element: HTMLElement, store: ExplorerStore, options: SuggestOptions): void {
  const suggestButton = button("Suggest supernodes", "suggest");
  options.bar.appendChild(suggestButton);
  const box = el("section", "suggest-box");
  box.setAttribute("aria-label", "Suggested supernodes");
  box.hidden = true;
  const head = el("div", "suggest-head");
  const threshold = el("input");
  threshold.type = "number";
  threshold.name = "suggest_threshold";
  threshold.min = "0";
  threshold.max = "1";
  threshold.step = "0.05";
  threshold.value = DEFAULT_THRESHOLD;
  threshold.title = "Lowest mean similarity of a group: higher gives fewer, tighter groups";
  const thresholdLabel = el("label", "suggest-threshold", "min. similarity ");
  thresholdLabel.appendChild(threshold);
  const acceptAll = button("Accept all", "suggest_accept_all");
  const rejectAll = button("Reject all", "suggest_reject_all");
  const undo = button("Undo", "suggest_undo");
  undo.title = "Take back the last accept or reject (Ctrl/Cmd+Z)";
  head.append(thresholdLabel, acceptAll, rejectAll, undo);
  const status = el("p", "suggest-status");
  status.setAttribute("role", "status");
  status.setAttribute("aria-live", "polite");
  const list = el("ul", "suggest-list");
  box.append(head, status, list);
  options.bar.after(box);

  // The preview's canvas is made on the first Suggest: a page nobody asks on carries none.
  let canvas: HTMLCanvasElement | null = null;
  let review: Review = emptyReview;
  let focused = -1;
  let asked = 0; // the latest request; an older answer arriving late is ignored
  let summary = "";
  let frame = 0;
  const repaint = (): void => {
    if (frame || !canvas) return;
    frame = requestAnimationFrame(() => {
      frame = 0;
      if (canvas) paintPreview(canvas, store.get(), review, focused);
    });
  };

  const say = (text: string, bad = false): void => {
    status.textContent = text;
    status.classList.toggle("is-error", bad);
    status.setAttribute("role", bad ? "alert" : "status");
  };

  const describe = (): string => {
    const accepted = review.decisions.filter((d) => d === "accepted").length;
    const rejected = review.decisions.filter((d) => d === "rejected").length;
    const open = pending(review).length;
    const decided = accepted || rejected ? ` ${accepted} accepted, ${rejected} rejected.` : "";
    return `${summary}${decided}${open ? "" : review.suggestions.length ? " All decided." : ""}`;
  };

  const render = (): void => {
    const s = store.get();
    const current = supernodesOf(s);
    const scope = requestScope(s.graph, s.view.visible, current);
    suggestButton.disabled = scope.nodes.length < 2;
    suggestButton.title = scope.nodes.length < 2
      ? "Needs two features in view, or pinned, that are in no supernode yet"
      : `Suggest groups of the ${scope.nodes.length} ${scope.from === "pins" ? "pinned features" : "features in view"} that are in no supernode yet`;
    const open = pending(review);
    acceptAll.disabled = !open.some((k) => canAccept(review, current, k));
    rejectAll.disabled = open.length === 0;
    undo.disabled = !canUndo(review, current);
    element.classList.toggle("is-reviewing", !box.hidden);
    const rows = open.map((k) => {
      const suggestion = review.suggestions[k]!;
      const row = el("li", `suggest-row${k === focused ? " is-focused" : ""}`);
      row.tabIndex = 0;
      row.dataset["index"] = String(k);
      const swatch = el("span", "suggest-swatch");
      swatch.style.borderColor = suggestion.colour;
      const text = el("span", "suggest-text");
      text.append(el("span", "suggest-name", suggestion.name), el("span", "suggest-meta muted", `${suggestion.members.length} features · ${where(s, suggestion)} · confidence ${formatNumber(suggestion.confidence)}`));
      row.title = suggestion.members.map((i) => s.graph.nodes[i]!.id).join(", ");
      const accept = button("Accept", "suggest_accept");
      accept.setAttribute("aria-label", `Accept suggestion ${k + 1}, “${suggestion.name}”`);
      accept.disabled = !canAccept(review, current, k);
      if (accept.disabled) accept.title = "Its features are already in supernodes";
      const reject = button("Reject", "suggest_reject");
      reject.setAttribute("aria-label", `Reject suggestion ${k + 1}, “${suggestion.name}”`);
      accept.addEventListener("click", () => apply(decide(review, store.get(), [k], "accepted")));
      reject.addEventListener("click", () => apply(decide(review, store.get(), [k], "rejected")));
      row.append(swatch, text, accept, reject);
      const focus = (): void => {
        if (focused === k) return;
        focused = k;
        for (const other of list.children) other.classList.toggle("is-focused", other === row);
        repaint();
      };
      row.addEventListener("mouseenter", focus);
      row.addEventListener("focusin", focus);
      return row;
    });
    // Rebuilding the rows must not lose a keyboard user's place: the focus stays on the same
    // button of the same suggestion, or, when that one was decided, goes to the row in its place.
    const active = document.activeElement;
    const activeRow = active instanceof HTMLElement && list.contains(active) ? active.closest<HTMLElement>(".suggest-row") : null;
    const at = activeRow ? [...list.children].indexOf(activeRow) : -1;
    list.replaceChildren(...rows);
    if (activeRow) {
      const same = rows.find((row) => row.dataset["index"] === activeRow.dataset["index"]);
      const name = active instanceof HTMLButtonElement ? active.name : "";
      const target = same ? (same.querySelector<HTMLElement>(`button[name="${name}"]`) ?? same) : (rows[Math.min(at, rows.length - 1)] ?? undo);
      target.focus();
    }
    repaint();
  };

  const apply = (next: { review: Review; supernodes: Supernodes } | null): void => {
    if (!next) return;
    review = next.review;
    focused = -1;
    const s = store.get();
    if (next.supernodes.groups !== s.groups || next.supernodes.pinned !== s.pinned) {
      store.set({ pinned: next.supernodes.pinned, groups: next.supernodes.groups });
    }
    say(describe());
    render();
  };

  list.addEventListener("mouseleave", () => {
    if (list.contains(document.activeElement)) return;
    focused = -1;
    for (const row of list.children) row.classList.remove("is-focused");
    repaint();
  });

  const ask = async (): Promise<void> => {
    const s = store.get();
    const scope = requestScope(s.graph, s.view.visible, supernodesOf(s));
    if (scope.nodes.length < 2) return;
    const body: SuggestionRequest = { node_ids: scope.nodes.map((i) => s.graph.nodes[i]!.id) };
    const value = threshold.value.trim();
    if (value !== "") body.threshold = Number(value);
    const mine = ++asked;
    box.hidden = false;
    if (!canvas) {
      canvas = el("canvas", "lg-layer suggest-overlay");
      options.graphEl.appendChild(canvas);
    }
    suggestButton.disabled = true;
    say(`Asking about ${scope.nodes.length} ${scope.from === "pins" ? "pinned features" : "features in view"}…`);
    render();
    let reply: { status: number; body: unknown };
    try {
      reply = await sendJson(options.url, "POST", body);
    } catch {
      reply = { status: 0, body: null };
    }
    if (mine !== asked) return;
    if (reply.status !== 200) {
      const error = asApiError(reply.body, reply.status);
      const fields = Object.entries(error.detail).map(([field, message]) => `${field}: ${message}`);
      say(reply.status === 0 ? "The server could not be reached; try again." : [error.error, ...fields].join(" "), true);
      render();
      return;
    }
    const found = parseSuggestions(s.graph, reply.body);
    review = startReview(review, found);
    focused = -1;
    const from = scope.from === "pins" ? "pinned features" : "features in view";
    summary = found.length
      ? `${found.length} suggestion${found.length === 1 ? "" : "s"} for the ${scope.nodes.length} ${from}, most confident first.`
      : `No groups among the ${scope.nodes.length} ${from} at this similarity; try a lower one.`;
    say(describe());
    box.dataset["ready"] = String(mine);
    render();
  };

  suggestButton.addEventListener("click", () => void ask());
  threshold.addEventListener("keydown", (event) => {
    event.stopPropagation(); // the explorer's shortcuts (0, +, -, f) are digits and signs typed here
    if (event.key === "Enter") void ask();
  });
  acceptAll.addEventListener("click", () => apply(decide(review, store.get(), pending(review), "accepted")));
  rejectAll.addEventListener("click", () => apply(decide(review, store.get(), pending(review), "rejected")));
  undo.addEventListener("click", () => apply(undoLast(review, store.get())));
  document.addEventListener("keydown", (event) => {
    const target = event.target as HTMLElement | null;
    if (target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA" || target.isContentEditable)) return;
    if (!(event.ctrlKey || event.metaKey) || event.shiftKey || event.key.toLowerCase() !== "z") return;
    if (!canUndo(review, store.get())) return;
    event.preventDefault();
    apply(undoLast(review, store.get()));
  });

  store.watch(["view", "viewport", "graph"], repaint);
  store.watch(["pinned", "groups", "view"], render);
  new ResizeObserver(repaint).observe(options.graphEl);
  render();
}
