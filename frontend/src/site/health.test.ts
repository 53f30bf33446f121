import { describe, expect, it } from "vitest";
import { summarizeHealth } from "./health";

describe("summarizeHealth", () => {
  it("reports all up only for a 200 with nothing down", () => {
    expect(summarizeHealth(200, { down: [] })).toEqual({ ok: true, text: "services: all up" });
  });
  it("names the components that are down", () => {
    expect(summarizeHealth(503, { down: ["redis", "worker"] })).toEqual({
      ok: false,
      text: "services down: redis, worker",
    });
  });
  it("treats a malformed body as a failure instead of trusting it", () => {
    expect(summarizeHealth(200, { down: "none" }).ok).toBe(false);
    expect(summarizeHealth(200, null).ok).toBe(false);
    expect(summarizeHealth(200, { down: [1, 2] }).ok).toBe(false);
  });
});
