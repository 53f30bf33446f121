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
