// The "Compare with…" panel: pick a graph B of the same model and transcoder set, fetch the diff
// (GET /api/v1/graph-diff), colour this graph by it on a canvas over the link graph, list what
// changed most, show B beside it (its own explorer, embedded, compared back with this one), and
// patch the features that differ (or one supernode's) from B into this graph as an intervention
// run (POST /api/v1/intervene), shown with the Test panel's result view. The comparison lives in
// the URL (`compare`, `compareView`), so a copied link reopens it. Text from the server is set
// with textContent.

import { asApiError, el, sendJson } from "../site/dom";
import { candidates, overlayFor, parseCompare, patchFor, tableRows, withCompare, type CompareState, type GraphDiff, type GraphRow, type Overlay } from "./compare";
import { logitTokens, type SteeringRun } from "./hypothesis";
import { clearedOverlay, fitViewport } from "./linkGraph";
import type { ExplorerStore } from "./state";
import { COLORS, formatNumber, nodeRadius } from "./style";
import { follow, renderResult } from "./testPanel";

export interface ComparePanelOptions {
  model: string;
  set: string;
  graphSlug: string;
  diffUrl: string;
  graphsUrl: string;
  interveneUrl: string; // "" where runs cannot be made (embeds)
  canRun: boolean;
  graphEl: HTMLElement; // the link graph, which the overlay covers
}

const MARK_COLORS: Record<string, string> = { only_a: "#c43c28", more: "#2c6bb3", less: "#e0701b" };
const EDGE_COLORS: Record<string, string> = { only_a: "rgba(196,60,40,0.7)", shared: "rgba(44,107,179,0.55)" };

function paintOverlay(canvas: HTMLCanvasElement, store: ExplorerStore, overlay: Overlay | null): void {
  const cleared = clearedOverlay(canvas);
  if (!cleared) return;
  const { ctx, width, height } = cleared;
  if (!overlay) return;
  const s = store.get();
  const vp = s.viewport ?? fitViewport(s, width, height);
  const { x, y } = s.view.layout;
  const visible = s.view.visible;
  const at = (i: number): [number, number] => [(x[i]! - vp.x) * vp.k, (y[i]! - vp.y) * vp.ky];
  ctx.lineCap = "round";
  for (const edge of overlay.edges) {
    if (visible[edge.source] !== 1 || visible[edge.target] !== 1) continue;
    const [x0, y0] = at(edge.source);
    const [x1, y1] = at(edge.target);
    ctx.strokeStyle = EDGE_COLORS[edge.status] ?? COLORS.muted;
    ctx.lineWidth = Math.min(4, 0.6 + Math.abs(edge.delta));
    ctx.beginPath();
    ctx.moveTo(x0, y0);
    ctx.lineTo(x1, y1);
    ctx.stroke();
  }
  const r = nodeRadius(vp.k) + 2.5;
  for (const [mark, color] of Object.entries(MARK_COLORS)) {
    ctx.strokeStyle = color;
    ctx.lineWidth = 2.5;
    ctx.beginPath();
    for (const [i, m] of overlay.marks) {
      if (m !== mark || visible[i] !== 1) continue;
      const [cx, cy] = at(i);
      ctx.moveTo(cx + r, cy);
      ctx.arc(cx, cy, r, 0, 2 * Math.PI);
    }
    ctx.stroke();
  }
}

function legend(): HTMLElement {
  const box = el("p", "compare-legend");
  for (const [text, color] of [
    ["only in this graph", MARK_COLORS["only_a"]!],
    ["more influential in B", MARK_COLORS["more"]!],
    ["less influential in B", MARK_COLORS["less"]!],
  ] as const) {
    const swatch = el("span", "compare-swatch");
    swatch.style.borderColor = color;
    box.append(swatch, ` ${text}  `);
  }
  return box;
}

function signed(value: number | null): string {
  if (value === null) return "–";
  return `${value > 0 ? "+" : ""}${formatNumber(value)}`;
}

export function setUpComparePanel(element: HTMLElement, store: ExplorerStore, options: ComparePanelOptions): void {
  element.classList.add("compare-panel");
  const self = `${options.model}/${options.graphSlug}`;
  const head = el("div", "compare-head");
  const picker = el("select");
  picker.name = "compare";
  picker.setAttribute("aria-label", "Graph to compare with");
  picker.appendChild(el("option", "", "Compare with…"));
  picker.options[0]!.value = "";
  const side = el("input");
  side.type = "checkbox";
  side.name = "side_by_side";
  const sideLabel = el("label", "test-option");
  sideLabel.append(side, " side by side");
  const clear = el("button", "button small", "Stop comparing");
  clear.type = "button";
  head.append(el("h3", "", "Compare"), picker, sideLabel, clear);
  const status = el("p", "compare-status");
  status.setAttribute("role", "status");
  status.setAttribute("aria-live", "polite");
  const summary = el("p", "compare-summary");
  const table = el("table", "compare-table");
  const patchBox = el("div", "compare-patch");
  const results = el("div", "test-results");
  const besides = el("div", "compare-side");
  element.append(head, status, summary, legend(), table, patchBox, besides, results);

  const canvas = el("canvas", "lg-layer compare-overlay");
  options.graphEl.appendChild(canvas);
  let diff: GraphDiff | null = null;
  let overlay: Overlay | null = null;
  let frame = 0;
  const repaint = (): void => {
    if (frame) return;
    frame = requestAnimationFrame(() => {
      frame = 0;
      paintOverlay(canvas, store, overlay);
    });
  };
  store.watch(["view", "viewport", "graph"], repaint);
  new ResizeObserver(repaint).observe(options.graphEl);

  const writeUrl = (state: CompareState | null): void => {
    const query = withCompare(location.search, state);
    history.replaceState(null, "", `${location.pathname}${query ? `?${query}` : ""}${location.hash}`);
  };

  const renderTable = (current: GraphDiff): void => {
    const head = el("tr");
    for (const h of ["node", "status", "pos A → B", "Δ influence", "Δ activation"]) head.appendChild(el("th", "", h));
    table.replaceChildren(head);
    for (const row of tableRows(current, 50)) {
      const tr = el("tr", `compare-row ${row.node.status}`);
      const local = row.node.id_a !== null ? store.get().graph.index.get(row.node.id_a) : undefined;
      tr.append(el("td", "", row.name), el("td", "", row.node.status.replace("_", " ")), el("td", "", row.where), el("td", "", signed(row.node.delta_influence)), el("td", "", signed(row.node.delta_activation)));
      if (local !== undefined) {
        tr.tabIndex = 0;
        tr.addEventListener("mouseenter", () => store.set({ hovered: local }));
        tr.addEventListener("mouseleave", () => store.set({ hovered: -1 }));
        tr.addEventListener("click", () => store.set({ selected: local }));
      }
      table.appendChild(tr);
    }
  };

  const renderPatch = (current: GraphDiff): void => {
    patchBox.replaceChildren();
    if (!options.interveneUrl) return;
    const scope = el("select");
    scope.name = "patch_scope";
    scope.setAttribute("aria-label", "Features to patch");
    const all = el("option", "", "every feature that differs");
    all.value = "";
    scope.appendChild(all);
    store.get().groups.forEach((group, k) => {
      const option = el("option", "", `supernode: ${group.name}`);
      option.value = String(k);
      scope.appendChild(option);
    });
    const mode = el("select");
    mode.name = "patch_mode";
    for (const value of ["free", "constrained"]) {
      const option = el("option", "", value);
      option.value = value;
      mode.appendChild(option);
    }
    const run = el("button", "button primary small", "Patch B into this graph");
    run.type = "button";
    run.name = "patch";
    run.disabled = !options.canRun;
    patchBox.append(el("span", "muted", "Set "), scope, el("span", "muted", " to their activations in B, mode "), mode, run);
    run.addEventListener("click", async () => {
      const s = store.get();
      const group = scope.value === "" ? null : s.groups[Number(scope.value)];
      const members = group ? new Set(group.members.map((i) => s.graph.nodes[i]!.id)) : null;
      const interventions = patchFor(current, current.patch_limit, members);
      if (!interventions.length) {
        status.textContent = "Nothing to patch: no feature there differs in a way an intervention can set.";
        return;
      }
      run.disabled = true;
      status.textContent = "Submitting…";
      try {
        const body = {
          model: options.model,
          ...(options.set ? { transcoder_set: options.set } : {}),
          graph: options.graphSlug,
          title: `Patch ${group ? group.name : "the difference"} from ${current.b.slug}`.slice(0, 200),
          interventions,
          mode: mode.value,
          logit_tokens: logitTokens(s.graph),
        };
        const reply = await sendJson(options.interveneUrl, "POST", body);
        if (reply.status !== 202) {
          status.textContent = asApiError(reply.body, reply.status).error;
          return;
        }
        const finished = await follow(reply.body as SteeringRun, (text) => (status.textContent = text));
        status.textContent = finished.status === "succeeded" ? `Done: ${interventions.length} features patched.` : (finished.job?.error ?? `The run ${finished.status}.`);
        results.replaceChildren(renderResult(finished, logitTokens(s.graph)));
      } catch {
        status.textContent = "The server could not be reached; try again.";
      } finally {
        run.disabled = !options.canRun;
      }
    });
  };

  const renderSide = (state: CompareState | null, current: GraphDiff | null): void => {
    besides.replaceChildren();
    if (!state?.side || !current) return;
    const frameEl = el("iframe", "compare-frame");
    frameEl.title = `Graph B: ${current.b.prompt}`;
    frameEl.src = `${current.b.page_url}?${new URLSearchParams({ embed: "1", compare: self }).toString()}`;
    besides.append(el("h4", "", `B: ${current.b.prompt}`), frameEl);
  };

  const open = async (state: CompareState | null): Promise<void> => {
    writeUrl(state);
    picker.value = state?.ref ?? "";
    side.checked = state?.side ?? false;
    clear.hidden = state === null;
    element.dataset["compare"] = state?.ref ?? "";
    if (!state) {
      diff = null;
      overlay = null;
      [summary, table, patchBox, besides, results].forEach((box) => box.replaceChildren());
      status.textContent = "";
      repaint();
      return;
    }
    if (diff && `${diff.b.model}/${diff.b.slug}` === state.ref) {
      renderSide(state, diff);
      return;
    }
    status.textContent = "Comparing…";
    const reply = await sendJson(`${options.diffUrl}?${new URLSearchParams({ a: self, b: state.ref }).toString()}`, "GET", undefined);
    if (reply.status !== 200) {
      status.textContent = asApiError(reply.body, reply.status).error;
      return;
    }
    diff = reply.body as GraphDiff;
    overlay = overlayFor(store.get().graph, diff);
    const features = diff.summary["feature"] ?? {};
    const edges = diff.summary["edges"] ?? {};
    summary.textContent = `B: “${diff.b.prompt}”. Features: ${features["shared"] ?? 0} shared, ${features["only_a"] ?? 0} only here, ${features["only_b"] ?? 0} only in B (${overlay.onlyB} nodes of B are not drawn here). Edges: ${edges["shared"] ?? 0} shared, ${edges["only_a"] ?? 0} only here, ${edges["only_b"] ?? 0} only in B.`;
    status.textContent = "";
    element.dataset["ready"] = "1";
    renderTable(diff);
    renderPatch(diff);
    renderSide(state, diff);
    repaint();
  };

  const loadChoices = async (): Promise<void> => {
    const reply = await sendJson(`${options.graphsUrl}?${new URLSearchParams({ model: options.model }).toString()}`, "GET", undefined);
    if (reply.status !== 200) return;
    const rows = ((reply.body as { results?: GraphRow[] }).results ?? []) as GraphRow[];
    const chosen = parseCompare(location.search)?.ref ?? "";
    const choices = candidates(rows, options.model, options.set, options.graphSlug);
    // A graph named by the URL but not listed (an unlisted one) stays choosable.
    if (chosen && !choices.some((c) => c.ref === chosen)) choices.push({ ref: chosen, text: chosen });
    for (const choice of choices) {
      const option = el("option", "", choice.text.slice(0, 80));
      option.value = choice.ref;
      picker.appendChild(option);
    }
    picker.value = chosen;
    picker.dataset["loaded"] = "1";
  };

  picker.addEventListener("change", () => void open(picker.value ? { ref: picker.value, side: side.checked } : null));
  side.addEventListener("change", () => void open(picker.value ? { ref: picker.value, side: side.checked } : null));
  clear.addEventListener("click", () => void open(null));
  store.watch(["groups"], () => diff && renderPatch(diff));
  void loadChoices().then(() => open(parseCompare(location.search)));
}
