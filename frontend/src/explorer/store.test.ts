import { describe, expect, it, vi } from "vitest";
import { Store } from "./store";

describe("Store", () => {
  it("notifies subscribers with the new and previous state", () => {
    const store = new Store({ a: 1, b: "x" });
    const seen = vi.fn();
    store.subscribe(seen);
    store.set({ a: 2 });
    expect(seen).toHaveBeenCalledWith({ a: 2, b: "x" }, { a: 1, b: "x" });
  });

  it("does nothing when a patch changes nothing", () => {
    const store = new Store({ a: 1 });
    const seen = vi.fn();
    store.subscribe(seen);
    store.set({ a: 1 });
    expect(seen).not.toHaveBeenCalled();
  });

  it("lets a watcher follow only the fields it names", () => {
    const store = new Store({ a: 1, b: 1 });
    const seen = vi.fn();
    const stop = store.watch(["b"], seen);
    store.set({ a: 2 });
    expect(seen).not.toHaveBeenCalled();
    store.set({ b: 2 });
    expect(seen).toHaveBeenCalledTimes(1);
    stop();
    store.set({ b: 3 });
    expect(seen).toHaveBeenCalledTimes(1);
  });
});

describe("Store with derived state", () => {
  it("never hands a subscriber a stale state when another subscriber sets more state", () => {
    const store = new Store({ input: 1, derived: 2 });
    store.watch(["input"], (s) => store.set({ derived: s.input * 2 }));
    const seen: [number, number][] = [];
    store.subscribe((s) => seen.push([s.input, s.derived]));
    store.set({ input: 5 });
    expect(store.get()).toEqual({ input: 5, derived: 10 });
    expect(seen).toEqual([[5, 10]]);
  });

  it("gives each subscriber the last state it saw as the previous one", () => {
    const store = new Store({ a: 0, b: 0 });
    store.watch(["a"], (s) => store.set({ b: s.a + 1 }));
    const changes: string[] = [];
    store.subscribe((s, prev) => changes.push(`${prev.a},${prev.b} -> ${s.a},${s.b}`));
    store.set({ a: 1 });
    store.set({ a: 2 });
    expect(changes).toEqual(["0,0 -> 1,2", "1,2 -> 2,3"]);
  });
});
