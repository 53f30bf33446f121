import { describe, expect, it } from "vitest";
import { parseAnnouncement, reconnectDelayMs } from "./announcements";

describe("parseAnnouncement", () => {
  it("accepts a well-formed notice", () => {
    const raw = JSON.stringify({ type: "announcement", level: "warning", text: "Back at 5" });
    expect(parseAnnouncement(raw)).toEqual({ level: "warning", text: "Back at 5" });
  });
  it("ignores hostile or malformed messages", () => {
    expect(parseAnnouncement("not json")).toBeNull();
    expect(parseAnnouncement("null")).toBeNull();
    expect(parseAnnouncement(JSON.stringify({ type: "other", level: "info", text: "x" }))).toBeNull();
    expect(parseAnnouncement(JSON.stringify({ type: "announcement", level: "html", text: "x" }))).toBeNull();
    expect(parseAnnouncement(JSON.stringify({ type: "announcement", level: "info", text: "  " }))).toBeNull();
  });
  it("truncates overlong text", () => {
    const raw = JSON.stringify({ type: "announcement", level: "info", text: "a".repeat(2000) });
    expect(parseAnnouncement(raw)?.text.length).toBe(500);
  });
});

describe("reconnectDelayMs", () => {
  it("backs off exponentially up to a cap", () => {
    expect(reconnectDelayMs(0)).toBe(1000);
    expect(reconnectDelayMs(3)).toBe(8000);
    expect(reconnectDelayMs(50)).toBe(30000);
  });
});
