import { describe, expect, it } from "vitest";
import { emptyUrlState, parseUrlState, serialiseUrlState, type UrlState } from "./urlState";

describe("URL state", () => {
  const full: UrlState = {
    clickedId: "1_3_1",
    pinnedIds: ["0_5_0", "1_-1_1", "E_10_0"],
    supernodes: [{ name: "cat things", ids: ["0_5_0", "0_7_1"] }],
    labels: [["0_5_0", "the <b>article</b>"]],
    linkType: "input",
    pruningThreshold: 0.6,
    edgeThreshold: 0.9,
    densityThreshold: 0.01,
    viewport: { x: -12.5, y: 40, k: 1.75, ky: 2.5 },
  };

  it("round-trips every field", () => {
    expect(parseUrlState(serialiseUrlState(full))).toEqual(full);
  });

  it("writes the parameter names Neuronpedia reads", () => {
    const params = new URLSearchParams(serialiseUrlState(full));
    expect(params.get("pinnedIds")).toBe("0_5_0,1_-1_1,E_10_0");
    expect(JSON.parse(params.get("supernodes")!)).toEqual([["cat things", "0_5_0", "0_7_1"]]);
    expect(JSON.parse(params.get("clerps")!)).toEqual([["0_5_0", "the <b>article</b>"]]);
  });

  it("keeps other parameters it does not own", () => {
    const out = serialiseUrlState(emptyUrlState(), new URLSearchParams("embed=1&pinnedIds=x"));
    expect(out).toBe("embed=1");
  });

  it("reads an empty or absent query as the default state", () => {
    expect(parseUrlState("")).toEqual(emptyUrlState());
    expect(parseUrlState("?")).toEqual(emptyUrlState());
  });

  it("never throws on hostile input and keeps what is valid", () => {
    const hostile = [
      "?clickedId=%3Cscript%3E&pinnedIds=a,,b,%00,<img>",
      "?supernodes=%7B%22x%22:1%7D&clerps=[[1,2],[%22ok%22]]",
      "?supernodes=[[%22g%22]]&pruningThreshold=NaN&edgeThreshold=-5&densityThreshold=1e999",
      "?view=1,2&linkType=sideways",
      "?view=NaN,0,1",
      "?supernodes=" + "[".repeat(100000),
      "?clerps=" + encodeURIComponent(JSON.stringify({ "0_5_0": "x".repeat(1000), bad: 3 })),
      "?%E0%A4%A=1&pinnedIds=%",
      "?constructor=1&__proto__=2&pinnedIds=__proto__",
    ];
    for (const search of hostile) {
      expect(() => parseUrlState(search)).not.toThrow();
    }
    const first = parseUrlState(hostile[0]!);
    expect(first.clickedId).toBeNull();
    expect(first.pinnedIds).toEqual(["a", "b"]);
    const third = parseUrlState(hostile[2]!);
    expect(third.supernodes).toEqual([]);
    expect(third.pruningThreshold).toBeNull();
    expect(third.edgeThreshold).toBe(0);
    expect(parseUrlState(hostile[3]!).linkType).toBe("both");
    expect(parseUrlState(hostile[3]!).viewport).toBeNull();
    const labels = parseUrlState(hostile[6]!).labels;
    expect(labels).toHaveLength(1);
    expect(labels[0]![1]).toHaveLength(200);
  });

  it("reads a three-number view (one scale for x and y) as well", () => {
    expect(parseUrlState("?view=1,2,3").viewport).toEqual({ x: 1, y: 2, k: 3, ky: 3 });
    expect(parseUrlState("?view=1,2,3,0").viewport).toBeNull();
  });

  it("caps the number of pinned ids and strips control characters from labels", () => {
    const many = Array.from({ length: 9000 }, (_, i) => `0_${i}_0`).join(",");
    expect(parseUrlState(`?pinnedIds=${many}`).pinnedIds).toHaveLength(5000);
    const labels = parseUrlState("?clerps=" + encodeURIComponent(JSON.stringify([["a", "x\u0000\ny"]]))).labels;
    expect(labels).toEqual([["a", "x  y"]]);
  });
});
