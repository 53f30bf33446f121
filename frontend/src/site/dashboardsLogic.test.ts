import { describe, expect, it } from "vitest";
import { dashboardsRequest, describeDashboards, importedLayers } from "./dashboardsLogic";
import type { JobView } from "./followJob";

function form(entries: [string, string | Blob][]): FormData {
  const data = new FormData();
  for (const [k, v] of entries) data.append(k, v);
  return data;
}

const running: JobView = { id: "j", status: "running", phase: "outputs", percent: 93.4, position: null, error: "", graph: null, url: "/api/v1/jobs/j", websocket: "/ws/jobs/j/" };

describe("dashboardsRequest", () => {
  it("sends a server path with the budget and the ticked layers, and no empty file", () => {
    const { body, error } = dashboardsRequest(form([["corpus_file", new Blob([])], ["corpus_path", " /data/c.txt "], ["max_tokens", "5000"], ["layers", "0"], ["layers", "2"], ["csrfmiddlewaretoken", "x"]]));
    expect(error).toBeNull();
    expect([...body.keys()]).toEqual(["corpus_path", "max_tokens", "layers", "layers"]);
    expect(body.get("corpus_path")).toBe("/data/c.txt");
    expect(body.getAll("layers")).toEqual(["0", "2"]);
  });
  it("sends an upload", () => {
    const { body, error } = dashboardsRequest(form([["corpus_file", new Blob(["w5 w6"])], ["corpus_path", ""], ["max_tokens", ""]]));
    expect(error).toBeNull();
    expect([...body.keys()]).toEqual(["corpus_file"]);
  });
  it("asks for exactly one corpus", () => {
    expect(dashboardsRequest(form([["corpus_path", ""]])).error?.detail["corpus_file"]).toMatch(/choose a corpus/);
    expect(dashboardsRequest(form([["corpus_file", new Blob(["x"])], ["corpus_path", "/a"]])).error?.detail["corpus_file"]).toMatch(/not both/);
  });
});

describe("describeDashboards", () => {
  it("names the phase and the layers imported so far", () => {
    expect(describeDashboards(running, [0, 1])).toBe("Running: importing layers (93%). Layers imported: 0, 1.");
    expect(describeDashboards({ ...running, status: "failed", error: "corpus: bad" }, [])).toBe("Failed: corpus: bad");
    expect(describeDashboards({ ...running, status: "succeeded" }, [0, 1, 2])).toBe("Done. Layers imported: 0, 1, 2.");
  });
  it("reads the layers from a job's result", () => {
    expect(importedLayers({ layers: [0, 2], features: 80 })).toEqual([0, 2]);
    expect(importedLayers(null)).toEqual([]);
    expect(importedLayers({ layers: "0" })).toEqual([]);
  });
});
