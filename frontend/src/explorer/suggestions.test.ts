import { describe, expect, it } from "vitest";
import { tinyGraphJson } from "./fixture";
import { buildGraph, type Graph } from "./graph";
import { toSubgraphFields } from "./savedSubgraph";
import { fromUrlState, initialState, toUrlState } from "./state";
import {
  canAccept,
  canUndo,
  decide,
  emptyReview,
  freeMembers,
  MAX_REQUEST_IDS,
  parseSuggestions,
  pending,
  requestScope,
  startReview,
  undoLast,
  type Review,
  type Supernodes,
} from "./suggestions";
import { groupNodes } from "./supernodes";
import { parseUrlState, serialiseUrlState } from "./urlState";

/** The tiny graph with six more features: 1_20_1 .. 1_25_1 (influence rising with the index). */
function graph(extra = 6): Graph {
  const json = tinyGraphJson();
  const nodes = json["nodes"] as Record<string, unknown>[];
  for (let k = 0; k < extra; k++) {
    nodes.push({ node_id: `1_${20 + k}_1`, feature: 20 + k, layer: "1", ctx_idx: 1, feature_type: "cross layer transcoder", clerp: "", influence: 0.2 + k / 100, activation: 1 });
  }
  return buildGraph(json);
}

const g = graph();
const id = (s: string): number => g.index.get(s)!;
const answer = (...groups: [string, string[], number?][]): unknown => ({
  suggestions: groups.map(([name, members, confidence]) => ({ name, members, confidence: confidence ?? 0.5, evidence: {}, layers: [1, 1], positions: [1, 1] })),
  signals: {},
  n_candidates: 8,
  threshold: 0.2,
});
const none: Supernodes = { pinned: [], groups: [] };

function review(...groups: [string, string[]][]): Review {
  return startReview(emptyReview, parseSuggestions(g, answer(...groups)));
}

describe("what is asked about", () => {
  it("asks about the pinned features when there are any, leaving out non-features and grouped ones", () => {
    const current = { pinned: [id("E_10_0"), id("0_5_0"), id("1_20_1"), id("1_21_1")], groups: [{ name: "mine", members: [id("1_21_1")] }] };
    expect(requestScope(g, new Uint8Array(g.n).fill(1), current)).toEqual({ from: "pins", nodes: [id("0_5_0"), id("1_20_1")] });
  });

  it("asks about the features in the pruned view when every pin is grouped or none is pinned", () => {
    const visible = new Uint8Array(g.n);
    for (const s of ["E_10_0", "0_5_0", "1_20_1", "1_21_1", "1_-1_1"]) visible[id(s)] = 1;
    const current = { pinned: [id("1_21_1")], groups: [{ name: "mine", members: [id("1_21_1")] }] };
    expect(requestScope(g, visible, current)).toEqual({ from: "view", nodes: [id("0_5_0"), id("1_20_1")] });
  });

  it("keeps the most influential features of a view larger than the endpoint takes", () => {
    const big = graph(MAX_REQUEST_IDS + 5);
    const scope = requestScope(big, new Uint8Array(big.n).fill(1), none);
    expect(scope.nodes).toHaveLength(MAX_REQUEST_IDS);
    // 0_7_1 has the smallest cumulative influence (0.1), so it comes first; the last five extras are cut.
    expect(scope.nodes[0]).toBe(big.index.get("0_7_1"));
    expect(scope.nodes).not.toContain(big.index.get(`1_${20 + MAX_REQUEST_IDS + 4}_1`));
  });
});

describe("reading the answer", () => {
  it("maps members to nodes and drops unknown, repeated and non-feature ids and groups left too small", () => {
    const found = parseSuggestions(
      g,
      answer(["a", ["1_20_1", "1_21_1", "9_9_9"], 1.7], ["b", ["1_21_1", "1_22_1"]], ["c", ["1_22_1", "E_10_0", "1_23_1"]]),
    );
    expect(found.map((s) => [s.name, s.members, s.confidence])).toEqual([
      ["a", [id("1_20_1"), id("1_21_1")], 1],
      ["c", [id("1_22_1"), id("1_23_1")], 0.5],
    ]);
    expect(found[0]!.colour).not.toBe(found[1]!.colour);
  });

  it("never throws on a malformed answer", () => {
    for (const body of [null, 3, "x", {}, { suggestions: "no" }, { suggestions: [null, 1, { members: ["1_20_1", "1_21_1"] }, { members: ["1_20_1", "1_21_1"], confidence: 0.5, layers: [1], positions: [1, 1] }] }]) {
      expect(parseSuggestions(g, body)).toEqual([]);
    }
  });

  it("names a suggestion the server left unnamed and strips control characters", () => {
    const [first, second] = parseSuggestions(g, answer(["", ["1_20_1", "1_21_1"]], ["say\u0000 cat", ["1_22_1", "1_23_1"]]));
    expect(first!.name).toBe("suggestion 1");
    expect(second!.name).toBe("say  cat");
  });
});

describe("accepting and rejecting", () => {
  it("turns an accepted suggestion into a supernode of pinned members, the same data a hand-made one is", () => {
    const r = review(["says cat", ["1_20_1", "1_21_1"]], ["other", ["1_22_1", "1_23_1"]]);
    const { review: after, supernodes } = decide(r, none, [0], "accepted");
    expect(supernodes.groups).toEqual([{ name: "says cat", members: [id("1_20_1"), id("1_21_1")] }]);
    expect(supernodes.pinned).toEqual([id("1_20_1"), id("1_21_1")]);
    expect(after.decisions).toEqual(["accepted", "pending"]);
    expect(pending(after)).toEqual([1]);
    // Saved, linked and reopened like a group made with the Group button.
    const handMade = groupNodes([], [id("1_20_1"), id("1_21_1")], "says cat");
    expect(supernodes.groups).toEqual(handMade);
    const s = { ...initialState(g), ...supernodes };
    expect(toSubgraphFields(s).supernodes).toEqual([["says cat", "1_20_1", "1_21_1"]]);
    const reopened = fromUrlState(g, parseUrlState(serialiseUrlState(toUrlState(s))), s.thresholds);
    expect(reopened.groups).toEqual(supernodes.groups);
    expect(reopened.pinned).toEqual(supernodes.pinned);
  });

  it("rejecting changes no supernode and leaves the others pending", () => {
    const r = review(["a", ["1_20_1", "1_21_1"]], ["b", ["1_22_1", "1_23_1"]]);
    const { review: after, supernodes } = decide(r, none, [1], "rejected");
    expect(supernodes).toBe(none);
    expect(after.decisions).toEqual(["pending", "rejected"]);
  });

  it("accept all makes one supernode per pending suggestion and skips the rejected ones", () => {
    let r = review(["a", ["1_20_1", "1_21_1"]], ["b", ["1_22_1", "1_23_1"]], ["c", ["1_24_1", "1_25_1"]]);
    let current = none;
    ({ review: r, supernodes: current } = decide(r, current, [1], "rejected"));
    ({ review: r, supernodes: current } = decide(r, current, pending(r), "accepted"));
    expect(current.groups.map((x) => x.name)).toEqual(["a", "c"]);
    expect(r.decisions).toEqual(["accepted", "rejected", "accepted"]);
    ({ review: r } = decide(r, current, pending(r), "rejected"));
    expect(r.undo).toHaveLength(2); // nothing was left to reject: no undo step
  });

  it("merges with existing supernodes: a hand-made one keeps its nodes and its name stays unique", () => {
    const mine = { pinned: [id("1_20_1"), id("1_21_1"), id("0_5_0")], groups: [{ name: "says cat", members: [id("1_20_1")] }] };
    const r = review(["says cat", ["1_20_1", "1_21_1", "1_22_1"]], ["b", ["1_21_1", "1_22_1"]]);
    expect(freeMembers(mine.groups, r.suggestions[0]!)).toEqual([id("1_21_1"), id("1_22_1")]);
    const { review: after, supernodes } = decide(r, mine, [0], "accepted");
    expect(supernodes.groups).toEqual([
      { name: "says cat", members: [id("1_20_1")] },
      { name: "says cat (2)", members: [id("1_21_1"), id("1_22_1")] },
    ]);
    expect(supernodes.pinned).toEqual([id("1_20_1"), id("1_21_1"), id("0_5_0"), id("1_22_1")]);
    // The second now has no free member left: it cannot be accepted and stays pending.
    expect(canAccept(after, supernodes, 1)).toBe(false);
    const again = decide(after, supernodes, [1], "accepted");
    expect(again.review).toBe(after);
    expect(again.supernodes).toBe(supernodes);
  });
});

describe("undo", () => {
  it("restores the previous supernodes and pins exactly and makes the suggestion pending again", () => {
    const mine: Supernodes = { pinned: [id("0_5_0"), id("1_20_1")], groups: [{ name: "mine", members: [id("0_5_0")] }] };
    let r = review(["a", ["1_20_1", "1_21_1"]], ["b", ["1_22_1", "1_23_1"]]);
    let current = mine;
    ({ review: r, supernodes: current } = decide(r, current, [1], "rejected"));
    ({ review: r, supernodes: current } = decide(r, current, [0], "accepted"));
    expect(canUndo(r, current)).toBe(true);
    const once = undoLast(r, current)!;
    expect(once.supernodes).toBe(mine);
    expect(once.review.decisions).toEqual(["pending", "rejected"]);
    const twice = undoLast(once.review, once.supernodes)!;
    expect(twice.supernodes).toBe(mine);
    expect(twice.review.decisions).toEqual(["pending", "pending"]);
    expect(undoLast(twice.review, twice.supernodes)).toBeNull();
  });

  it("refuses once the supernodes were changed by hand, so that change is not overwritten", () => {
    const r0 = review(["a", ["1_20_1", "1_21_1"]]);
    const { review: r, supernodes } = decide(r0, none, [0], "accepted");
    const renamed = { ...supernodes, groups: supernodes.groups.map((x) => ({ ...x, name: "renamed" })) };
    expect(canUndo(r, renamed)).toBe(false);
    expect(undoLast(r, renamed)).toBeNull();
  });

  it("undoes a decision of an earlier review after a new one replaced it, bringing that review back", () => {
    const first = review(["a", ["1_20_1", "1_21_1"]]);
    const { review: r, supernodes } = decide(first, none, [0], "accepted");
    const second = startReview(r, parseSuggestions(g, answer(["z", ["1_24_1", "1_25_1"]])));
    expect(second.decisions).toEqual(["pending"]);
    const back = undoLast(second, supernodes)!;
    expect(back.supernodes).toBe(none);
    expect(back.review.suggestions.map((s) => s.name)).toEqual(["a"]);
    expect(back.review.decisions).toEqual(["pending"]);
  });
});
