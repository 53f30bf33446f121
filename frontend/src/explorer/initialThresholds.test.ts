import { describe, expect, it } from "vitest";
import { buildGraph } from "./graph";
import { tinyGraphJson } from "./fixture";
import { createStore } from "./state";

describe("a graph opens with its own pruning settings", () => {
  it("starts the node and edge sliders at the file's pruning_settings", () => {
    const json = tinyGraphJson() as { metadata: Record<string, unknown> };
    json.metadata["pruning_settings"] = { node_threshold: 0.6, edge_threshold: 0.85 };
    const store = createStore(buildGraph(json));
    expect(store.get().thresholds.node).toBe(0.6);
    expect(store.get().thresholds.edge).toBe(0.85);
  });

  it("keeps the defaults when the settings are missing or out of range", () => {
    const json = tinyGraphJson() as { metadata: Record<string, unknown> };
    delete json.metadata["node_threshold"];
    json.metadata["pruning_settings"] = { edge_threshold: 7 };
    const plain = createStore(buildGraph(tinyGraphJson())).get().thresholds;
    const odd = createStore(buildGraph(json)).get().thresholds;
    expect(odd.edge).toBe(plain.edge);
  });
});
