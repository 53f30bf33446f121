import { describe, expect, it } from "vitest";
import { buildGraph } from "./graph";
import { tinyGraphJson } from "./fixture";
import { bars, changedTokens, defaultValue, interventionsFor, logitTokens, pointChange, sliderRange, summary, testRows, type InterveneResult, type SteeringRun } from "./hypothesis";
import { createStore } from "./state";

function storeWith(pinned: string[], groups: { name: string; ids: string[] }[] = []) {
  const graph = buildGraph(tinyGraphJson());
  const store = createStore(graph);
  const id = (s: string): number => graph.index.get(s)!;
  store.set({ pinned: pinned.map(id), groups: groups.map((g) => ({ name: g.name, members: g.ids.map(id) })) });
  return store;
}

describe("test rows", () => {
  it("gives one row per supernode and per pinned feature, in the subgraph's order", () => {
    const store = storeWith(["0_7_1", "1_3_1", "3_42_1"], [{ name: "cat things", ids: ["0_7_1", "1_-1_1"] }]);
    const rows = testRows(store.get(), new Map());
    expect(rows.map((r) => [r.key.slice(0, 1), r.name, r.members.length, r.skipped])).toEqual([
      ["g", "cat things", 1, 1], // the error node is not a feature
      ["n", "say animal", 1, 0],
      ["n", 'Output " sat" (p=0.612)', 0, 1],
    ]);
    expect(rows[1]!.members).toEqual([{ layer: 1, position: 1, feature: 3 }]);
    expect(rows[1]!.activation).toBe(1.5);
    expect(rows.every((r) => r.action === "ablate")).toBe(true);
  });

  it("leaves out features at the special first position, which cannot be changed", () => {
    const rows = testRows(storeWith(["0_5_0"]).get(), new Map());
    expect(rows[0]!.members).toEqual([]);
  });

  it("keeps the action and strength given to a unit", () => {
    const store = storeWith(["1_3_1"]);
    const key = testRows(store.get(), new Map())[0]!.key;
    const rows = testRows(store.get(), new Map([[key, { action: "scale" as const, value: 3, allPositions: true }]]));
    expect(rows[0]).toMatchObject({ action: "scale", value: 3, allPositions: true });
  });
});

describe("interventions", () => {
  it("sends groups as groups with one strength and single features as themselves", () => {
    const store = storeWith(["0_7_1", "1_3_1"], [{ name: "cats", ids: ["0_7_1"] }]);
    const [group, single] = testRows(store.get(), new Map());
    const request = interventionsFor([
      { ...group!, action: "scale", value: 2.5 },
      { ...single!, action: "ablate", value: 9 },
    ]);
    expect(request).toEqual([
      { group: "cats", features: [{ layer: 0, position: 1, feature: 7 }], action: "scale", value: 2.5 },
      { layer: 1, position: 1, feature: 3, action: "ablate" },
    ]);
  });

  it("sends every position as null and says each feature once", () => {
    const store = storeWith(["0_7_1", "1_3_1"], [{ name: "both", ids: ["0_7_1", "1_3_1"] }]);
    const [row] = testRows(store.get(), new Map());
    const [item] = interventionsFor([{ ...row!, action: "set", value: 4, allPositions: true }]);
    expect(item!.features).toEqual([
      { layer: 0, position: null, feature: 7 },
      { layer: 1, position: null, feature: 3 },
    ]);
  });

  it("skips rows without features", () => {
    const rows = testRows(storeWith(["3_42_1"]).get(), new Map());
    expect(interventionsFor(rows)).toEqual([]);
  });
});

describe("strengths", () => {
  it("starts a scale at 2 and a set at twice the activation", () => {
    expect(defaultValue("scale", 4)).toBe(2);
    expect(defaultValue("set", 1.234)).toBe(2.47);
    expect(defaultValue("set", Number.NaN)).toBe(1);
    expect(defaultValue("ablate", 4)).toBe(0);
  });

  it("ranges a set slider by the activation and a scale slider by factors", () => {
    expect(sliderRange("set", 2.5)).toEqual({ min: -10, max: 10, step: 0.05 });
    expect(sliderRange("scale", 2.5)).toEqual({ min: -10, max: 10, step: 0.1 });
    expect(sliderRange("set", Number.NaN).max).toBe(10);
  });
});

describe("results", () => {
  const result: InterveneResult = {
    input_tokens: [],
    activations: [],
    logits: [
      { token: 5, text: " dog", clean_probability: 0.3, probability: 0.05, clean_logit: 1, logit: 0 },
      { token: 42, text: " sat", clean_probability: 0.1, probability: 0.6, clean_logit: 0, logit: 2 },
      { token: 7, text: " ran", clean_probability: 0.01, probability: 0.02, clean_logit: -1, logit: -1 },
    ],
  };

  it("reads the graph's target tokens from its logit node ids", () => {
    expect(logitTokens(buildGraph(tinyGraphJson()))).toEqual([42]);
  });

  it("puts targets first, then the most probable before or after", () => {
    expect(bars(result, [7]).map((b) => [b.text, b.target])).toEqual([
      [" ran", true],
      [" sat", false],
      [" dog", false],
    ]);
  });

  it("writes probability changes in signed percentage points", () => {
    expect(pointChange(0.3, 0.05)).toBe("−25 pp");
    expect(pointChange(0.1, 0.123)).toBe("+2.3 pp");
    expect(pointChange(0.2, 0.2)).toBe("±0.0 pp");
  });

  it("marks only the tokens the two continuations do not share", () => {
    // " Austin. The capital" vs " Jefferson City. The capital": one token replaced by two.
    expect(changedTokens([7, 1, 2, 3], [8, 9, 1, 2, 3])).toEqual([
      [true, false, false, false],
      [true, true, false, false, false],
    ]);
    expect(changedTokens([1, 2], [1, 2])).toEqual([
      [false, false],
      [false, false],
    ]);
    expect(changedTokens([], [4])).toEqual([[], [true]]);
  });

  it("summarises a run in one line", () => {
    const run = {
      kind: "intervene",
      interventions: [
        { layer: 1, position: 4, feature: 9, action: "ablate" },
        { group: "Texas", features: [{ layer: 0, feature: 1 }, { layer: 0, feature: 2 }], action: "scale", value: 3 },
        { layer: 2, position: null, feature: 5, action: "set", value: 10 },
      ],
      settings: { mode: "constrained" },
    } as unknown as SteeringRun;
    expect(summary(run)).toBe("Intervene: ablate L1/9@4, ×3 Texas (2) +1 · constrained");
    const steer = { ...run, kind: "steer", interventions: [], settings: { n_tokens: 24, temperature: 0.5 } } as unknown as SteeringRun;
    expect(summary(steer)).toBe("Steer: no interventions · 24 tokens, T=0.5");
  });
});
