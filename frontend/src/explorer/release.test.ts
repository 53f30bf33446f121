import { describe, expect, it, vi } from "vitest";
import { tinyGraphJson } from "./fixture";
import { buildGraph } from "./graph";
import { releaseBuffers, releaseOnLeave, typedArrayBuffers } from "./release";
import { createStore } from "./state";

/** A buffer whose transfer(0) is recorded (Node 20 has no ArrayBuffer.prototype.transfer; the
 * browser test in tests/e2e/test_explorer.py checks the real one). */
function recorded(bytes: number): ArrayBuffer & { transfer: ReturnType<typeof vi.fn>; detached: boolean } {
  const buffer = new ArrayBuffer(bytes) as ArrayBuffer & { transfer: ReturnType<typeof vi.fn>; detached: boolean };
  buffer.detached = false;
  buffer.transfer = vi.fn(() => {
    buffer.detached = true;
    return new ArrayBuffer(0);
  });
  return buffer;
}

describe("typedArrayBuffers", () => {
  it("finds the buffers of a state's graph, prune index and view", () => {
    const state = createStore(buildGraph(tinyGraphJson())).get();
    const found = typedArrayBuffers(state);
    for (const array of [state.graph.edgeSrc, state.graph.outEdges, state.graph.kind, state.prune.order, state.view.visible, state.view.layout.x]) {
      expect(found.has(array.buffer as ArrayBuffer)).toBe(true);
    }
  });

  it("does not walk arrays, maps or class instances, nor past its depth", () => {
    const inArray = new Float64Array(4);
    const inMap = new Float64Array(4);
    const deep = new Float64Array(4);
    const shallow = new Float64Array(4);
    class Holder {
      array = new Float64Array(4);
    }
    const holder = new Holder();
    const found = typedArrayBuffers({ list: [inArray], map: new Map([["a", inMap]]), holder, a: { b: { c: { d: { deep } } } }, shallow });
    expect([...found]).toEqual([shallow.buffer]);
    expect(found.has(holder.array.buffer as ArrayBuffer)).toBe(false);
  });
});

describe("releaseOnLeave", () => {
  it("frees the buffers when the page is left for good, once each, and not when it is kept for going back", () => {
    const target = new EventTarget();
    const a = recorded(8);
    const b = recorded(16);
    releaseOnLeave(() => [a, b, a], target);
    const leave = (persisted: boolean): Event => Object.assign(new Event("pagehide"), { persisted });
    target.dispatchEvent(leave(true));
    expect([a.transfer.mock.calls.length, b.transfer.mock.calls.length]).toEqual([0, 0]);
    target.dispatchEvent(leave(false));
    expect(a.transfer.mock.calls).toEqual([[0]]);
    expect(b.transfer.mock.calls).toEqual([[0]]);
  });

  it("says so where the browser cannot free a buffer", () => {
    expect(releaseBuffers([new ArrayBuffer(8)])).toBe(typeof (ArrayBuffer.prototype as { transfer?: unknown }).transfer === "function");
    expect(releaseBuffers([recorded(8)])).toBe(true);
  });
});
