// Feature detail for the hovered (else selected) node: what the graph file says about it, then
// what the features API knows (explanations, top activating examples with token highlighting,
// top/bottom output tokens, density, activation histogram with this node's activation marked).
// Every string from data is set with textContent.

import { keyString, type FeatureLookup, type FeatureResult } from "../api/features";
import type { FeatureDetail, FeatureKey } from "../api/types";
import { el } from "../site/dom";
import { featureKey, Kind, type Graph, type NodeInfo } from "./graph";
import { showToken } from "./linkGraph";
import { groupPicked, nodeActions, runNodeAction, syncNodeActions } from "./nodeActions";
import { nodeName, setLabel, type ExplorerState, type ExplorerStore } from "./state";
import { formatNumber } from "./style";

export function featureKeyOf(graph: Graph, node: NodeInfo, model: string, set: string): FeatureKey | null {
  if (node.kind !== Kind.Feature || node.feature === null) return null;
  return { model: model || graph.metadata.scan, set: set || graph.metadata.transcoderSet, layer: node.layer, index: node.feature };
}

const SVG = "http://www.w3.org/2000/svg";
const HOVER_FETCH_DELAY_MS = 150;

function svgText(text: string, x: number, y: number, anchor: "start" | "middle" | "end", cls = "axis-label"): SVGTextElement {
  const label = document.createElementNS(SVG, "text");
  label.setAttribute("x", String(x));
  label.setAttribute("y", String(y));
  label.setAttribute("text-anchor", anchor);
  label.setAttribute("class", cls);
  label.textContent = text;
  return label;
}

function svgLine(x1: number, y1: number, x2: number, y2: number, cls: string): SVGLineElement {
  const line = document.createElementNS(SVG, "line");
  line.setAttribute("x1", String(x1));
  line.setAttribute("x2", String(x2));
  line.setAttribute("y1", String(y1));
  line.setAttribute("y2", String(y2));
  line.setAttribute("class", cls);
  return line;
}

/** Activation histogram: activation values on x (the bins' edges), token counts on y (log scale,
 * so rare strong activations stay visible), this node's activation marked. */
function histogram(detail: FeatureDetail, activation: number): SVGSVGElement | null {
  const h = detail.histogram;
  if (!h || h.counts.length === 0 || h.edges.length < 2) return null;
  const width = 280;
  const height = 92;
  const left = 34; // y tick labels
  const right = 6;
  const top = 4;
  const bottom = height - 28; // x tick labels and the axis title below
  const plotW = width - left - right;
  const plotH = bottom - top;
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("class", "histogram");
  const lo = h.edges[0]!;
  const hi = h.edges[h.edges.length - 1]!;
  const span = hi - lo || 1;
  const peak = Math.max(...h.counts, 0);
  const max = Math.max(Math.log1p(peak), 1);
  const barW = plotW / h.counts.length;
  h.counts.forEach((count, k) => {
    const bar = document.createElementNS(SVG, "rect");
    const bh = (Math.log1p(count) / max) * plotH;
    bar.setAttribute("x", String(left + k * barW));
    bar.setAttribute("y", String(bottom - bh));
    bar.setAttribute("width", String(Math.max(barW - 0.5, 0.5)));
    bar.setAttribute("height", String(bh));
    const tip = document.createElementNS(SVG, "title");
    tip.textContent = `${formatNumber(h.edges[k] ?? lo)}–${formatNumber(h.edges[k + 1] ?? hi)}: ${count.toLocaleString("en")} tokens`;
    bar.appendChild(tip);
    svg.appendChild(bar);
  });
  svg.append(svgLine(left, top, left, bottom, "axis"), svgLine(left, bottom, width - right, bottom, "axis"));
  svg.append(
    svgText(peak.toLocaleString("en"), left - 3, top + 7, "end"),
    svgText("0", left - 3, bottom, "end"),
    svgText(formatNumber(lo), left, bottom + 10, "start"),
    svgText(formatNumber(hi), width - right, bottom + 10, "end"),
    svgText("activation", left + plotW / 2, height - 4, "middle", "axis-title"),
  );
  const yTitle = svgText("tokens (log)", 0, 0, "middle", "axis-title");
  yTitle.setAttribute("transform", `translate(9 ${top + plotH / 2}) rotate(-90)`);
  svg.appendChild(yTitle);
  if (Number.isFinite(activation)) {
    const x = left + Math.min(plotW, Math.max(0, ((activation - lo) / span) * plotW));
    svg.appendChild(svgLine(x, top, x, bottom, "histogram-marker"));
  }
  return svg;
}

function logitList(title: string, logits: [string, number][], cls: string): HTMLElement | null {
  if (!logits.length) return null;
  const box = el("div", `logits ${cls}`);
  box.appendChild(el("h4", "", title));
  for (const [token, value] of logits.slice(0, 10)) {
    const chip = el("span", "logit-chip", showToken(token));
    if (Number.isFinite(value)) chip.appendChild(el("span", "logit-value", (value > 0 ? "+" : "") + formatNumber(value, 2)));
    box.appendChild(chip);
  }
  return box;
}

function examples(detail: FeatureDetail): HTMLElement | null {
  if (!detail.activations.length) return null;
  const box = el("div", "examples");
  box.appendChild(el("h4", "", "Top activations"));
  const globalMax = detail.max_activation ?? Math.max(...detail.activations.flatMap((a) => a.values), 1e-9);
  for (const example of detail.activations) {
    const line = el("div", "example");
    const peak = example.values.indexOf(Math.max(...example.values));
    // A window around the peak keeps long contexts readable.
    const from = Math.max(0, peak - 24);
    const to = Math.min(example.tokens.length, peak + 8);
    for (let t = from; t < to; t++) {
      const value = example.values[t] ?? 0;
      // Spaces stay spaces (not showToken's no-break ones), and a token's leading space goes
      // before its highlight: the snippet wraps between words, never inside one.
      const text = (example.tokens[t] ?? "").replace(/\n/g, "⏎");
      const word = text.trimStart();
      if (word && word !== text) line.appendChild(document.createTextNode(text.slice(0, text.length - word.length)));
      const span = el("span", "tok", word || text);
      if (value > 0) {
        span.style.backgroundColor = `rgba(224, 112, 27, ${Math.min(1, value / globalMax).toFixed(2)})`;
        span.title = formatNumber(value);
      }
      line.appendChild(span);
    }
    box.appendChild(line);
  }
  return box;
}

export function setUpFeaturePanel(element: HTMLElement, store: ExplorerStore, lookup: FeatureLookup | null, model: string, set: string, featurePrefix = ""): void {
  element.classList.add("feature-panel");
  // The selected node's buttons (pin, pick for a group, feature page) and "Group the picked".
  const groupButton = el("button", "node-action group-picked");
  groupButton.type = "button";
  const syncActions = (s: ExplorerState): void => {
    syncNodeActions(element, s);
    groupButton.hidden = s.grouping.length < 2;
    groupButton.textContent = `Group the ${s.grouping.length} picked`;
  };
  element.addEventListener("click", (event) => {
    if (event.target === groupButton) groupPicked(store);
    else runNodeAction(store, event);
  });
  let shown = -2;
  let shownSelected = -2;
  let labelsVersion: ReadonlyMap<number, string> | null = null;

  const render = (s: ExplorerState): void => {
    const i = s.hovered >= 0 ? s.hovered : s.selected;
    if (i === shown && s.selected === shownSelected && s.labels === labelsVersion) return;
    shown = i;
    shownSelected = s.selected;
    labelsVersion = s.labels;
    if (i < 0) {
      element.replaceChildren(el("div", "panel-title", "Hover or click a node to see its feature"));
      return;
    }
    const node = s.graph.nodes[i]!;
    const header = el("div", "feature-header");
    const title = el("div", "panel-title", nodeName(s, i));
    const facts = el("div", "feature-facts");
    const parts = [featureKey(node), `position ${node.ctx} "${showToken(node.token)}"`];
    if (!Number.isNaN(node.activation)) parts.push(`activation ${formatNumber(node.activation)}`);
    if (!Number.isNaN(node.influence)) parts.push(`influence ${formatNumber(node.influence)}`);
    if (!Number.isNaN(node.tokenProb)) parts.push(`p ${formatNumber(node.tokenProb)}`);
    facts.textContent = parts.join(" · ");
    header.append(title, facts);
    const children: Node[] = [header];
    if (i === s.selected) {
      const actions = nodeActions(s, i, featurePrefix, false);
      actions.appendChild(groupButton);
      children.push(actions);
      // Inline, plain-text label editing for the selected node.
      const edit = el("input", "label-edit");
      edit.type = "text";
      edit.maxLength = 200;
      edit.placeholder = "Your label for this node";
      edit.value = s.labels.get(i) ?? "";
      edit.setAttribute("aria-label", "Node label");
      edit.addEventListener("change", () => setLabel(store, i, edit.value));
      edit.addEventListener("keydown", (event) => {
        if (event.key === "Enter") edit.blur();
        event.stopPropagation();
      });
      children.push(edit);
    }
    const body = el("div", "feature-body");
    children.push(body);
    element.replaceChildren(...children);

    const key = featureKeyOf(s.graph, node, model, set);
    if (!key) return;
    if (!lookup) {
      body.appendChild(el("p", "muted", "Feature details are not available on this server."));
      return;
    }
    const fill = (result: FeatureResult): void => {
      if (shown !== i) return;
      if (result === "missing") {
        body.replaceChildren(el("p", "muted", `No dashboard stored for ${keyString(key)}.`));
        return;
      }
      if (result === "error") {
        body.replaceChildren(el("p", "muted", "Could not load feature details."));
        return;
      }
      const parts: (Node | null)[] = [];
      for (const explanation of result.explanations.slice(0, 3)) {
        const p = el("p", "explanation", explanation.text);
        if (explanation.author || explanation.method) p.title = [explanation.author, explanation.method].filter(Boolean).join(" · ");
        parts.push(p);
      }
      if (result.density !== null) parts.push(el("p", "density", `density ${result.density.toExponential(2)}`));
      parts.push(histogram(result, node.activation));
      parts.push(logitList("Top outputs", result.top_logits, "pos"));
      parts.push(logitList("Bottom outputs", result.bottom_logits, "neg"));
      parts.push(examples(result));
      body.replaceChildren(...parts.filter((p): p is Node => p !== null));
    };
    const cached = lookup.peek(key);
    if (cached) fill(cached);
    else {
      body.appendChild(el("p", "muted", "loading…"));
      // A node passed over on the way somewhere else is not worth a request (the lookup API is
      // rate-limited): hovers wait a moment; a selection asks at once.
      const delay = i === s.selected ? 0 : HOVER_FETCH_DELAY_MS;
      setTimeout(() => {
        if (shown === i) void lookup.get(key).then(fill);
      }, delay);
    }
  };
  store.watch(["hovered", "selected", "labels", "explanations", "showNames"], render);
  store.watch(["pinned", "grouping", "selected", "hovered"], syncActions);
  render(store.get());
  syncActions(store.get());
}
