// The Test panel: turn the pinned features and supernodes into interventions, run them as a
// job (POST /api/v1/intervene or /steer), follow the job's websocket (polling if it drops), and
// show what changed: target-logit probabilities before/after as bars, the activations that moved,
// or the default and steered continuations side by side with per-token probabilities on hover.
// The runs already made on this subgraph (or graph) are listed, and each can be shown or re-run.
// All text from the server is set with textContent.

import { JOB_PARAMS } from "../contract.gen";
import { asApiError, el, sendJson } from "../site/dom";
import { followJob, isFinal, runJobView, type JobView } from "../site/followJob";
import {
  ACTIONS,
  bars,
  changedTokens,
  defaultValue,
  featureNamer,
  interventionsFor,
  isNoOp,
  restoreRun,
  type FeatureNamer,
  isInterveneResult,
  isSteerResult,
  logitTokens,
  MAX_NEW_TOKENS,
  pointChange,
  sliderRange,
  summary,
  testRows,
  type Action,
  type InterveneResult,
  type RowSettings,
  type SteeringRun,
  type SteerResult,
} from "./hypothesis";
import { showToken } from "./linkGraph";
import { setRowSettings, updateTestPanel, type ExplorerStore } from "./state";
import { formatNumber } from "./style";

export interface TestPanelOptions {
  model: string;
  set: string;
  graphSlug: string;
  interveneUrl: string;
  steerUrl: string;
  graphRunsUrl: string;
  subgraphRunsUrl: (shareSlug: string) => string;
  canRun: boolean;
  loginUrl: string;
  missingSubgraph: string; // the ?subgraph= slug that could not be opened, or ""
}

const POLL_MS = 1000;

function labelled(text: string, control: HTMLElement): HTMLLabelElement {
  const label = el("label", "test-option");
  label.append(el("span", "", text), control);
  return label;
}

function numberInput(value: number, min: number, max: number, step: number, name: string): HTMLInputElement {
  const input = el("input");
  input.type = "number";
  input.name = name;
  input.min = String(min);
  input.max = String(max);
  input.step = String(step);
  input.value = String(value);
  return input;
}

/** The saved subgraph the page is on (the URL names it; a subgraph saved here updates the URL);
 * `missing` is the one the page was linked to but could not open: runs go on the graph then. */
function shareSlug(missing: string): string {
  const slug = new URLSearchParams(location.search).get("subgraph") ?? "";
  return /^[A-Za-z0-9_-]{1,32}$/.test(slug) && slug !== missing ? slug : "";
}

/** How a job's view reads in the panel's status line while it runs. */
function runStatus(view: JobView): string {
  if (view.status !== "queued") return "Running…";
  return view.position !== null ? `Queued (position ${view.position})…` : "Queued…";
}

/** Wait for the run's job to end (./followJob.ts), then read the run with its result. */
export async function follow(run: SteeringRun, onStatus: (text: string) => void): Promise<SteeringRun> {
  if (run.job) {
    const job = runJobView(run.job);
    const onChange = (view: JobView): void => {
      if (!isFinal(view)) onStatus(runStatus(view));
    };
    await followJob(job, onChange, { pollMs: POLL_MS }).finished;
  }
  const reply = await sendJson(run.url, "GET", undefined);
  return reply.status === 200 ? (reply.body as SteeringRun) : run;
}

function renderBars(result: InterveneResult, targets: readonly number[]): HTMLElement {
  const box = el("div", "test-bars");
  box.setAttribute("role", "table");
  box.setAttribute("aria-label", "Next-token probabilities before and after");
  const rows = bars(result, targets);
  const top = Math.max(...rows.map((r) => Math.max(r.before, r.after)), 1e-9);
  for (const row of rows) {
    const line = el("div", `test-bar-row${row.target ? " is-target" : ""}`);
    line.setAttribute("role", "row");
    const token = el("span", "test-bar-token", showToken(row.text));
    token.title = `token id ${row.token}${row.target ? " (a target of the graph)" : ""}`;
    const track = el("span", "test-bar-track");
    const before = el("span", "test-bar before");
    before.style.width = `${(100 * row.before) / top}%`;
    before.title = `before: ${(100 * row.before).toFixed(2)}%`;
    const after = el("span", "test-bar after");
    after.style.width = `${(100 * row.after) / top}%`;
    after.title = `after: ${(100 * row.after).toFixed(2)}%`;
    track.append(before, after);
    const numbers = el("span", "test-bar-numbers", `${(100 * row.before).toFixed(1)}% → ${(100 * row.after).toFixed(1)}%`);
    const delta = el("span", `test-bar-delta ${row.after >= row.before ? "up" : "down"}`, pointChange(row.before, row.after));
    line.append(token, track, numbers, delta);
    box.appendChild(line);
  }
  return box;
}

function renderActivations(result: InterveneResult): HTMLElement | null {
  if (!result.activations.length) return null;
  const box = el("details", "test-activations");
  box.appendChild(el("summary", "", `${result.activations.length} feature activations changed`));
  const table = el("table");
  const head = el("tr");
  for (const h of ["feature", "position", "before", "after"]) head.appendChild(el("th", "", h));
  table.appendChild(head);
  for (const a of result.activations.slice(0, 30)) {
    const tr = el("tr");
    tr.append(el("td", "", `L${a.layer}/${a.feature}`), el("td", "", String(a.position)), el("td", "", formatNumber(a.clean)), el("td", "", formatNumber(a.value)));
    table.appendChild(tr);
  }
  box.appendChild(table);
  return box;
}

function renderContinuation(title: string, prompt: string, continuation: SteerResult["default"], changed: readonly boolean[]): HTMLElement {
  const column = el("div", "test-continuation");
  column.appendChild(el("h4", "", title));
  const text = el("p", "test-text");
  text.appendChild(el("span", "test-prompt", prompt));
  continuation.tokens.forEach((token, k) => {
    const span = el("span", `test-token${changed[k] ? " differs" : ""}`, token.text);
    const alternatives = token.top.map((t) => `${JSON.stringify(t.text)} ${(100 * t.probability).toFixed(1)}%`).join("\n");
    span.title = `${JSON.stringify(token.text)}: p=${(100 * token.probability).toFixed(1)}%\ntop next tokens:\n${alternatives}`;
    span.tabIndex = 0;
    text.appendChild(span);
  });
  column.appendChild(text);
  return column;
}

export function renderResult(run: SteeringRun, targets: readonly number[], name: FeatureNamer = () => null): HTMLElement {
  const box = el("div", "test-result");
  box.dataset["run"] = run.id;
  box.appendChild(el("p", "test-result-title", summary(run, name)));
  if (run.status !== "succeeded" || run.result === null) {
    const reason = run.job?.error || (run.status === "cancelled" ? "The run was cancelled." : `The run is ${run.status}.`);
    box.appendChild(el("p", "test-error", reason));
    return box;
  }
  if (isInterveneResult(run.result)) {
    box.appendChild(renderBars(run.result, targets));
    const activations = renderActivations(run.result);
    if (activations) box.appendChild(activations);
  } else if (isSteerResult(run.result)) {
    const columns = el("div", "test-continuations");
    const { default: plain, steered } = run.result;
    const ids = (c: typeof plain): number[] => c.tokens.map((t) => t.id);
    const [plainChanged, steeredChanged] = changedTokens(ids(plain), ids(steered));
    columns.append(renderContinuation("Default", run.prompt, plain, plainChanged), renderContinuation("Steered", run.prompt, steered, steeredChanged));
    box.appendChild(columns);
  }
  return box;
}

export function setUpTestPanel(element: HTMLElement, store: ExplorerStore, options: TestPanelOptions): void {
  element.classList.add("test-panel");
  const targets = logitTokens(store.get().graph);

  const head = el("div", "test-head");
  head.append(el("h3", "", "Test this hypothesis"), el("span", "muted", "Pin features or supernodes, choose what to do with each, then run."));
  const table = el("div", "test-rows");
  const controls = el("div", "test-controls");
  const mode = el("select");
  mode.name = "mode";
  for (const [value, text] of [["constrained", "constrained (graph's linear model)"], ["free", "free (network recomputes)"]] as const) {
    const option = el("option", "", text);
    option.value = value;
    mode.appendChild(option);
  }
  const freeze = el("input");
  freeze.type = "checkbox";
  freeze.name = "freeze_attention";
  freeze.checked = true;
  const freezeLabel = labelled("freeze attention", freeze);
  const runButton = el("button", "button primary small", "Run intervention");
  runButton.type = "button";
  runButton.name = "intervene";
  const { n_tokens: tokens, temperature: heat } = JOB_PARAMS.steer;
  const nTokens = numberInput(tokens.default, tokens.low, MAX_NEW_TOKENS, 1, "n_tokens");
  const temperature = numberInput(heat.default, heat.low, heat.high, 0.1, "temperature");
  const seed = el("input");
  seed.type = "number";
  seed.name = "seed";
  seed.min = "0";
  seed.placeholder = "random";
  const onGenerated = el("input");
  onGenerated.type = "checkbox";
  onGenerated.name = "apply_to_generated";
  onGenerated.checked = true;
  const steerButton = el("button", "button small", "Steer generation");
  steerButton.type = "button";
  steerButton.name = "steer";
  const interveneGroup = el("div", "test-group");
  interveneGroup.append(labelled("mode", mode), freezeLabel, runButton);
  const steerGroup = el("div", "test-group");
  steerGroup.append(labelled("tokens", nTokens), labelled("temperature", temperature), labelled("seed", seed), labelled("steer generated tokens too", onGenerated), steerButton);
  controls.append(interveneGroup, steerGroup);
  const status = el("p", "test-status");
  status.setAttribute("role", "status");
  status.setAttribute("aria-live", "polite");
  const results = el("div", "test-results");
  const historyBox = el("div", "test-history");
  const historyTitle = el("h4", "", "Runs on this graph");
  const historyList = el("ul");
  historyBox.append(historyTitle, historyList);
  element.append(head, table, controls, status, results, historyBox);

  const setStatus = (text: string, bad = false): void => updateTestPanel(store, { status: { text, bad } });

  const syncFreeze = (): void => {
    freeze.disabled = mode.value === "constrained";
    if (mode.value === "constrained") freeze.checked = true;
  };
  mode.addEventListener("change", syncFreeze);
  syncFreeze();

  const renderRows = (): void => {
    const rows = testRows(store.get(), store.get().test.settings);
    table.replaceChildren();
    if (!rows.length) {
      table.appendChild(el("p", "muted", "Nothing pinned yet: Ctrl/Cmd-click features in the graph (g+click groups them)."));
    }
    for (const row of rows) {
      const line = el("div", "test-row");
      line.dataset["key"] = row.key;
      const name = el("span", "test-row-name", row.name);
      name.title = row.members.map((m) => `L${m.layer}/${m.feature}@${m.position}`).join(", ");
      line.appendChild(name);
      if (!row.members.length) {
        line.appendChild(el("span", "muted", "not a feature: error, token and logit nodes cannot be changed"));
        table.appendChild(line);
        continue;
      }
      const action = el("select");
      action.name = "action";
      action.setAttribute("aria-label", `action for ${row.name}`);
      for (const a of ACTIONS) {
        const option = el("option", "", a);
        option.value = a;
        action.appendChild(option);
      }
      action.value = row.action;
      const range = sliderRange(row.action, row.activation);
      const slider = el("input");
      slider.type = "range";
      slider.name = "strength";
      slider.setAttribute("aria-label", `strength for ${row.name}`);
      slider.min = String(range.min);
      slider.max = String(range.max);
      slider.step = String(range.step);
      slider.value = String(row.value);
      const value = numberInput(row.value, -10000, 10000, range.step, "value");
      value.setAttribute("aria-label", `value for ${row.name}`);
      const disabled = row.action === "ablate";
      slider.disabled = disabled;
      value.disabled = disabled;
      const everywhere = el("input");
      everywhere.type = "checkbox";
      everywhere.name = "all_positions";
      everywhere.checked = row.allPositions;
      const save = (patch: Partial<RowSettings>): void => {
        const current = store.get().test.settings.get(row.key) ?? { action: row.action, value: row.value, allPositions: row.allPositions };
        setRowSettings(store, row.key, { ...current, ...patch });
      };
      action.addEventListener("change", () => {
        const next = action.value as Action;
        save({ action: next, value: defaultValue(next, row.activation) });
        renderRows();
      });
      slider.addEventListener("input", () => {
        value.value = slider.value;
        save({ value: Number(slider.value) });
      });
      value.addEventListener("change", () => {
        const number = Number(value.value);
        if (Number.isFinite(number)) {
          slider.value = value.value;
          save({ value: number });
        }
      });
      everywhere.addEventListener("change", () => save({ allPositions: everywhere.checked }));
      const noOp = isNoOp(row) ? " · no change (not sent)" : "";
      const facts = el("span", "test-row-facts", `${row.members.length} feature${row.members.length === 1 ? "" : "s"}${Number.isFinite(row.activation) ? ` · act ${formatNumber(row.activation)}` : ""}${row.skipped ? ` · ${row.skipped} skipped` : ""}${noOp}`);
      line.append(action, slider, value, labelled("all positions", everywhere), facts);
      table.appendChild(line);
    }
    const { busy } = store.get().test;
    runButton.disabled = busy || !options.canRun;
    steerButton.disabled = busy || !options.canRun;
  };

  const refreshHistory = async (): Promise<void> => {
    const slug = shareSlug(options.missingSubgraph);
    historyTitle.textContent = slug ? "Runs on this subgraph" : "Runs on this graph";
    const reply = await sendJson(slug ? options.subgraphRunsUrl(slug) : options.graphRunsUrl, "GET", undefined);
    if (reply.status !== 200) return;
    const body = reply.body as { results?: SteeringRun[] };
    const runs = body.results ?? [];
    historyList.replaceChildren(
      ...runs.map((run) => {
        const li = el("li", store.get().test.lastRun?.id === run.id ? "current" : "");
        const show = el("button", "link-button", summary(run, featureNamer(store.get())));
        show.type = "button";
        show.title = "Show this run's result and set the rows as they were for it";
        show.addEventListener("click", () => {
          results.replaceChildren(renderResult(run, targets, featureNamer(store.get())));
          const restored = restoreRun(store.get(), run.interventions);
          store.set({ pinned: restored.pinned, groups: restored.groups });
          updateTestPanel(store, { settings: restored.settings });
          renderRows();
          for (const item of historyList.children) item.classList.toggle("current", item === li);
        });
        const meta = el("span", "meta", ` ${run.owner} · ${run.status} · ${new Date(run.created_at).toLocaleString()}`);
        li.append(show, meta);
        if (options.canRun) {
          const again = el("button", "button small", "Re-run");
          again.type = "button";
          again.addEventListener("click", () => void submit(`${run.url}/rerun`, {}));
          li.appendChild(again);
        }
        return li;
      }),
    );
    if (!runs.length) historyList.appendChild(el("li", "empty", "No runs yet."));
  };

  const submit = async (url: string, body: object): Promise<void> => {
    updateTestPanel(store, { busy: true, status: { text: "Submitting…", bad: false } });
    try {
      const reply = await sendJson(url, "POST", body);
      if (reply.status !== 202) {
        const error = asApiError(reply.body, reply.status);
        setStatus(error.error, true);
        return;
      }
      const finished = await follow(reply.body as SteeringRun, (text) => setStatus(text));
      updateTestPanel(store, { lastRun: finished });
      setStatus(finished.status === "succeeded" ? "Done." : (finished.job?.error ?? `The run ${finished.status}.`), finished.status !== "succeeded");
      results.replaceChildren(renderResult(finished, targets, featureNamer(store.get())));
      await refreshHistory();
    } catch {
      setStatus("The server could not be reached; try again.", true);
    } finally {
      updateTestPanel(store, { busy: false });
    }
  };

  const common = (): Record<string, unknown> => {
    const slug = shareSlug(options.missingSubgraph);
    return {
      model: options.model,
      ...(options.set ? { transcoder_set: options.set } : {}),
      ...(slug ? { subgraph: slug } : { graph: options.graphSlug }),
      // The rows as they are now: sliders save their settings without a re-render.
      interventions: interventionsFor(testRows(store.get(), store.get().test.settings)),
    };
  };
  runButton.addEventListener("click", () => {
    void submit(options.interveneUrl, { ...common(), mode: mode.value, freeze_attention: freeze.checked, logit_tokens: targets });
  });
  steerButton.addEventListener("click", () => {
    const body: Record<string, unknown> = {
      ...common(),
      n_tokens: Number(nTokens.value),
      temperature: Number(temperature.value),
      apply_to_generated: onGenerated.checked,
    };
    if (seed.value.trim() !== "") body["seed"] = Number(seed.value);
    void submit(options.steerUrl, body);
  });

  if (!options.canRun) {
    const login = el("a", "", "Log in");
    login.href = options.loginUrl;
    const note = el("p", "muted");
    note.append(login, " to run interventions and steering.");
    element.insertBefore(note, controls);
  }
  store.watch(["pinned", "groups", "labels"], renderRows);
  store.watch(["test"], (s, previous) => {
    if (s.test.busy !== previous.test.busy) renderRows();
    if (s.test.status !== previous.test.status) {
      status.textContent = s.test.status.text;
      status.classList.toggle("bad", s.test.status.bad);
    }
  });
  renderRows();
  void refreshHistory();
}
