import { describe, expect, it } from "vitest";
import { embedCode, shareLink } from "./share";

describe("share", () => {
  it("links to the subgraph without the explorer's view parameters", () => {
    expect(shareLink("https://atlas.example/graphs/m/s?clickedId=1_2_3&pinnedIds=a#x", "abc", false)).toBe("https://atlas.example/graphs/m/s?subgraph=abc");
    expect(shareLink("https://atlas.example/graphs/m/s", "a b", true)).toBe("https://atlas.example/graphs/m/s?subgraph=a+b&embed=1");
  });
  it("keeps the comparison the page shows", () => {
    expect(shareLink("https://atlas.example/graphs/m/s?pinnedIds=a&compare=m%2Fother&compareView=side", "abc", false)).toBe(
      "https://atlas.example/graphs/m/s?subgraph=abc&compare=m%2Fother&compareView=side",
    );
  });
  it("escapes the title in the embed code", () => {
    const code = embedCode("https://x/?subgraph=a&embed=1", '"><script>alert(1)</script>');
    expect(code).not.toContain("<script>");
    expect(code).toContain("&quot;&gt;&lt;script&gt;");
    expect(code).toContain('src="https://x/?subgraph=a&amp;embed=1"');
  });
});
