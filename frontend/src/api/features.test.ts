import { describe, expect, it, vi } from "vitest";
import { FeatureLookup, normaliseFeature } from "./features";

const key = (index: number) => ({ model: "m", set: "s", layer: 1, index });

function fakeFetch(answer: (body: { features: { layer: number; index: number }[] }) => unknown) {
  return vi.fn(async (_url: RequestInfo | URL, init?: RequestInit) => {
    const body = JSON.parse(String(init?.body));
    return new Response(JSON.stringify(answer(body)), { status: 200 });
  });
}

describe("FeatureLookup", () => {
  it("batches requests made together into one POST and caches the answers", async () => {
    const fetcher = fakeFetch((body) => ({
      results: body.features.filter((f) => f.index !== 2).map((f) => ({ layer: f.layer, index: f.index, density: 0.01 })),
      missing: [{ layer: 1, index: 2 }],
    }));
    const lookup = new FeatureLookup("/api/v1/features/lookup", fetcher as unknown as typeof fetch);
    const [a, b, c] = await Promise.all([lookup.get(key(1)), lookup.get(key(2)), lookup.get(key(3))]);
    expect(fetcher).toHaveBeenCalledTimes(1);
    expect(a).toMatchObject({ index: 1, density: 0.01 });
    expect(b).toBe("missing");
    expect(c).toMatchObject({ index: 3 });
    await lookup.get(key(1));
    expect(fetcher).toHaveBeenCalledTimes(1);
    expect(lookup.peek(key(3))).toMatchObject({ index: 3 });
  });

  it("reports errors without caching them", async () => {
    const fetcher = vi.fn(async () => new Response("boom", { status: 500 }));
    const lookup = new FeatureLookup("/x", fetcher as unknown as typeof fetch);
    expect(await lookup.get(key(1))).toBe("error");
    expect(await lookup.get(key(1))).toBe("error");
    expect(fetcher).toHaveBeenCalledTimes(2);
  });
});

describe("normaliseFeature", () => {
  it("turns a hostile or partial answer into safe defaults", () => {
    expect(normaliseFeature(null)).toBeNull();
    const f = normaliseFeature({
      layer: 2,
      index: 9,
      explanations: [{ text: "<b>x</b>" }, { text: 3 }, null],
      top_logits: [["a", 1], "b", { token: "c", value: 2 }, 7],
      activations: [{ tokens: ["a", 1], values: [1, "x"] }],
      histogram: { edges: [0, 1], counts: "no" },
      density: "high",
    })!;
    expect(f.explanations).toEqual([{ text: "<b>x</b>", score: null }]);
    expect(f.top_logits.map((l) => l[0])).toEqual(["a", "b", "c"]);
    expect(f.activations[0]).toEqual({ tokens: ["a", "1"], values: [1, 0] });
    expect(f.histogram).toBeNull();
    expect(f.density).toBeNull();
  });

  it("pairs each output token with its value from the parallel *_values list", () => {
    const f = normaliseFeature({
      layer: 0,
      index: 1,
      top_logits: [" cat", " dog"],
      top_logits_values: [1.5, "x"],
      bottom_logits: [" sky"],
      bottom_logits_values: [],
    })!;
    expect(f.top_logits[0]).toEqual([" cat", 1.5]);
    expect(f.top_logits[1]![0]).toBe(" dog");
    expect(f.top_logits[1]![1]).toBeNaN();
    expect(f.bottom_logits[0]![1]).toBeNaN();
  });

  it("spreads a bare list of histogram counts over [act_min, act_max]", () => {
    const f = normaliseFeature({ layer: 0, index: 1, act_min: 0, act_max: 4, histogram: [5, 3, 1, 0] })!;
    expect(f.histogram).toEqual({ edges: [0, 1, 2, 3, 4], counts: [5, 3, 1, 0] });
  });
});
