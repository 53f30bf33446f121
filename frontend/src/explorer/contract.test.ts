// graph.ts against the contract's own vectors (src/contract.gen.ts, written by contract/typescript.py).
import { describe, expect, it } from "vitest";
import { CANTOR_VECTORS, KNOWN_TYPES, NODE_ID_VECTORS, type NodeKind } from "../contract.gen";
import { cantorIndex, errorIdAliases, featureIndex, Kind, kindOf, parseNodeId } from "./graph";

const KINDS: Record<NodeKind, Kind> = {
  feature: Kind.Feature,
  error: Kind.Error,
  token: Kind.Embedding,
  logit: Kind.Logit,
};

describe("the node-id grammar", () => {
  it.each(NODE_ID_VECTORS.map((v) => [v.featureType, v.id, v] as const))("%s %s", (_type, id, vector) => {
    const kind = KINDS[vector.kind];
    const parts = parseNodeId(id, kind);
    if (vector.parts === null) {
      expect(parts).toBeNull();
      return;
    }
    expect(parts).toEqual({ layer: vector.parts.layer, number: vector.parts.number, pos: vector.parts.pos });
    expect(kindOf(vector.featureType, id)).toBe(kind);
    if (kind === Kind.Error) {
      // The canonical id first, then the older spelling: both find the node.
      const aliases = errorIdAliases(vector.parts.layer!, vector.parts.pos);
      expect(aliases[0]).toBe(vector.parts.canonical);
      expect(aliases).toContain(id);
    } else {
      expect(vector.parts.canonical).toBe(id);
    }
    if (kind === Kind.Feature) expect(featureIndex(id, vector.parts.layer!, -1, true)).toBe(vector.parts.number);
  });

  it("covers every feature_type the contract knows", () => {
    expect(new Set(NODE_ID_VECTORS.map((v) => v.featureType))).toEqual(new Set(KNOWN_TYPES));
  });
});

describe("the Cantor pairing", () => {
  it.each(CANTOR_VECTORS.map((v) => [...v]))("layer %i, index %i is %i", (layer, index, value) => {
    expect(cantorIndex(value)).toBe(index);
    expect(featureIndex("not-a-feature-id", layer, value, true)).toBe(index);
  });
});
