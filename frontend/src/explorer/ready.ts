// The explorer announces itself here once its store and panels are set up, so the page's other
// scripts (site/subgraphs.ts, a separate entry) wait for it instead of polling a global. Both
// entries import this module; the build puts it in one shared chunk, so they share its promise.

import type { SavedSubgraph } from "../api/types";
import type { ExplorerStore } from "./state";

export interface ExplorerHandle {
  store: ExplorerStore;
  // The saved subgraph the page opened with (?subgraph=<slug>), fetched once, by the explorer.
  subgraph: SavedSubgraph | null;
}

let announce: (handle: ExplorerHandle) => void = () => undefined;

/** Resolves once, with the explorer's store, when the graph is loaded and the page set up. */
export const explorerReady: Promise<ExplorerHandle> = new Promise((resolve) => (announce = resolve));

export function announceExplorer(handle: ExplorerHandle): void {
  announce(handle);
}
