// Buttons that do what Ctrl/Cmd-click and g+click do, for touch screens and for people who do not
// know the shortcuts: pin a node, pick it for a group (then group the picked ones), and a link to
// the feature's own page. The node panel and each connections row carry them; one delegated
// click handler per container runs them, and `syncNodeActions` keeps their pressed state current.

import { el } from "../site/dom";
import { Kind, type NodeInfo } from "./graph";
import { togglePin, type ExplorerState, type ExplorerStore } from "./state";
import { groupNodes } from "./supernodes";

/** The feature page of a feature node, or null (other kinds, or no transcoder set to link to). */
export function featurePageUrl(prefix: string, node: NodeInfo): string | null {
  if (!prefix || node.kind !== Kind.Feature || node.feature === null) return null;
  return `${prefix}${node.layer}/${node.feature}`;
}

/** Picks node i for the next group, or unpicks it; a picked node is pinned, as g+click does. */
export function togglePick(store: ExplorerStore, i: number): void {
  const s = store.get();
  const grouping = s.grouping.includes(i) ? s.grouping.filter((p) => p !== i) : [...s.grouping, i];
  store.set({ grouping, pinned: s.pinned.includes(i) ? s.pinned : [...s.pinned, i] });
}

/** Groups the picked nodes (two or more) under a new name. */
export function groupPicked(store: ExplorerStore): void {
  const s = store.get();
  if (s.grouping.length < 2) return;
  store.set({ groups: groupNodes(s.groups, s.grouping, `group ${s.groups.length + 1}`), grouping: [] });
}

function button(act: string, compact: boolean): HTMLButtonElement {
  const b = el("button", `node-action${compact ? " compact" : ""}`);
  b.type = "button";
  b.dataset["act"] = act;
  return b;
}

function featureLink(compact: boolean): HTMLAnchorElement {
  const link = el("a", `node-action feature-link${compact ? " compact" : ""}`, compact ? "↗" : "Feature page ↗");
  link.target = "_blank";
  link.rel = "noopener";
  link.title = "Open this feature's page (all its examples, explanations and graphs)";
  link.setAttribute("aria-label", "Feature page");
  return link;
}

// Each box's feature link, kept while the box shows a node that has no feature page.
const links = new WeakMap<HTMLElement, HTMLAnchorElement>();

/** Pin, pick-for-group and (features) feature-page controls for node i. */
export function nodeActions(s: ExplorerState, i: number, featurePrefix: string, compact: boolean): HTMLElement {
  const box = el("span", `node-actions${compact ? " compact" : ""}`);
  box.append(button("pin", compact), button("pick", compact));
  links.set(box, featureLink(compact));
  retargetNodeActions(box, s, i, featurePrefix);
  return box;
}

/** Points controls nodeActions made at node i instead (a list row shown for another node). */
export function retargetNodeActions(box: HTMLElement, s: ExplorerState, i: number, featurePrefix: string): void {
  for (const b of box.querySelectorAll<HTMLButtonElement>("button.node-action[data-act]")) b.dataset["node"] = String(i);
  const link = links.get(box);
  const url = featurePageUrl(featurePrefix, s.graph.nodes[i]!);
  if (link && url) {
    if (link.getAttribute("href") !== url) link.href = url;
    if (!link.isConnected) box.appendChild(link);
  } else {
    link?.remove();
  }
  syncNodeActions(box, s);
}

/** Brings the buttons under `root` in line with the pins and picks of state `s`. */
export function syncNodeActions(root: ParentNode, s: ExplorerState): void {
  for (const b of root.querySelectorAll<HTMLButtonElement>("button.node-action[data-act]")) {
    const i = Number(b.dataset["node"]);
    const compact = b.classList.contains("compact");
    if (b.dataset["act"] === "pin") {
      const on = s.pinned.includes(i);
      b.textContent = compact ? (on ? "Unpin" : "Pin") : on ? "Unpin" : "Pin to subgraph";
      b.setAttribute("aria-pressed", String(on));
      b.title = on ? "Take this node out of the subgraph" : "Pin this node to the subgraph (Ctrl/Cmd-click)";
    } else {
      const on = s.grouping.includes(i);
      b.textContent = compact ? (on ? "Picked" : "Group") : on ? "Picked for a group" : "Pick for a group";
      b.setAttribute("aria-pressed", String(on));
      b.title = "Pick nodes (g+click), then press Group to make them one supernode";
    }
  }
}

/** Runs a node action clicked under a container; true when the click was one. */
export function runNodeAction(store: ExplorerStore, event: Event): boolean {
  const target = event.target as HTMLElement | null;
  if (target?.closest("a.feature-link")) return true; // the link opens; the row is not selected
  const b = target?.closest<HTMLButtonElement>("button.node-action[data-act]");
  if (!b) return false;
  const i = Number(b.dataset["node"]);
  if (b.dataset["act"] === "pin") {
    const unpinning = store.get().pinned.includes(i);
    togglePin(store, i);
    if (unpinning) store.set({ grouping: store.get().grouping.filter((p) => p !== i) });
  } else if (b.dataset["act"] === "pick") togglePick(store, i);
  return true;
}
