import { describe, expect, it } from "vitest";
import { buildGraph } from "./graph";
import { tinyGraphJson } from "./fixture";
import { announceExplorer, explorerReady } from "./ready";
import { createStore } from "./state";

describe("explorerReady", () => {
  it("hands a script that waits the store the explorer announces", async () => {
    const store = createStore(buildGraph(tinyGraphJson()));
    let got: unknown = null;
    const waiting = explorerReady.then((handle) => (got = handle.store));
    await Promise.resolve();
    expect(got).toBeNull();
    announceExplorer({ store, subgraph: null });
    await waiting;
    expect(got).toBe(store);
  });
});
