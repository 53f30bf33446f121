import { describe, expect, it } from "vitest";
import { asApiError, fieldOf } from "./dom";

describe("API errors on a form", () => {
  it("files a nested key under its form field", () => {
    const fields = ["file", "model", "target_tokens"];
    expect(fieldOf("file", fields)).toBe("file");
    expect(fieldOf("target_tokens[1]", fields)).toBe("target_tokens");
    expect(fieldOf("nodes[3].layer", fields)).toBeNull();
  });
  it("reads the API's error shape and survives anything else", () => {
    expect(asApiError({ error: "invalid request", detail: { "links[0].weight": "expected a number" } }, 400)).toEqual({
      error: "invalid request",
      detail: { "links[0].weight": "expected a number" },
    });
    expect(asApiError("<html>502</html>", 502)).toEqual({ error: "The server answered 502.", detail: {} });
    expect(asApiError(null, 500).detail).toEqual({});
  });
});
