import { describe, expect, it, vi } from "vitest";
import { NeighbourhoodLoader } from "./neighbourhood";

describe("NeighbourhoodLoader", () => {
  it("asks for each node once, with every id in one request", async () => {
    const fetcher = vi.fn(async (url: RequestInfo | URL) => {
      const ids = new URL(String(url), "http://x").searchParams.getAll("node_id");
      return new Response(JSON.stringify({ links: ids.map((id) => ({ source: id, target: "t", weight: 1 })) }));
    });
    const loader = new NeighbourhoodLoader("/n", fetcher as unknown as typeof fetch);
    expect(await loader.load(["a", "b"])).toHaveLength(2);
    expect(await loader.load(["a", "b", "c"])).toEqual([{ source: "c", target: "t", weight: 1 }]);
    expect(await loader.load(["a"])).toEqual([]);
    expect(fetcher).toHaveBeenCalledTimes(2);
  });

  it("answers nothing (and retries later) when the server fails", async () => {
    const fetcher = vi.fn(async () => new Response("no", { status: 500 }));
    const loader = new NeighbourhoodLoader("/n", fetcher as unknown as typeof fetch);
    expect(await loader.load(["a"])).toEqual([]);
    expect(await loader.load(["a"])).toEqual([]);
    expect(fetcher).toHaveBeenCalledTimes(2);
  });
});
