import { describe, expect, it } from "vitest";
import { jobTick, type JobView } from "./followJob";
import { collapseTokens, describeJob, generateRequest, memoryText } from "./generateLogic";

const form = (values: Record<string, string>) => (name: string): string => values[name] ?? "";
const job: JobView = { id: "j", status: "queued", phase: "", percent: 0, position: 2, error: "", graph: null, url: "/api/v1/jobs/j", websocket: "/ws/jobs/j/" };

describe("generateRequest", () => {
  it("sends numbers as numbers and leaves empty settings to the server's defaults", () => {
    const { body, errors } = generateRequest(form({ model: "tiny", prompt: "The cat", max_n_logits: "5", node_threshold: "0.7", target_kind: "top" }));
    expect(errors).toEqual({});
    expect(body).toEqual({ model: "tiny", prompt: "The cat", visibility: "private", max_n_logits: 5, node_threshold: 0.7 });
  });
  it("keeps a token's leading space and reads bare numbers as ids", () => {
    const { body } = generateRequest(form({ model: "m", prompt: "p", target_kind: "logit_diff", target_a: " Paris", target_b: "17" }));
    expect(body["target"]).toEqual({ logit_diff: [" Paris", 17] });
  });
  it("names the fields that are missing or malformed", () => {
    const { errors } = generateRequest(form({ model: "m", prompt: " ", target_kind: "tokens", max_n_logits: "2.5" }));
    expect(Object.keys(errors).sort()).toEqual(["max_n_logits", "prompt", "target_tokens"]);
  });
});

describe("jobTick", () => {
  it("never lets the percent go back and stops at a final state", () => {
    let v = jobTick(job, { type: "progress", job: "j", phase: "attribution", percent: 40 });
    v = jobTick(v, { type: "state", job: "j", status: "running", phase: "attribution", percent: 30, position: null, attempts: 1, error: "", graph: null, run: null });
    expect(v.percent).toBe(40);
    v = jobTick(v, { type: "done", job: "j", graph: { model: "m", slug: "s", page_url: "/graphs/m/s", url: "/api/v1/graphs/m/s", artifact_url: "/api/v1/graphs/m/s/artifact" } });
    expect(describeJob(v)).toMatch(/Done/);
    expect(jobTick(v, { type: "failed", job: "j", message: "late" }).status).toBe("succeeded");
  });
  it("describes the queue position and failures", () => {
    expect(describeJob(jobTick(job, { type: "queued", job: "j", position: 1 }))).toBe("Queued: next in line.");
    expect(describeJob(jobTick(job, { type: "failed", job: "j", message: "out of memory" }))).toBe("Failed: out of memory");
  });
});

describe("collapseTokens", () => {
  it("lists a short prompt's tokens whole", () => {
    const tokens = Array.from({ length: 80 }, (_, i) => i);
    expect(collapseTokens(tokens)).toEqual({ head: tokens, hidden: 0, tail: [] });
  });

  it("shows a long prompt's first and last tokens and counts the rest", () => {
    const tokens = Array.from({ length: 927 }, (_, i) => i);
    const parts = collapseTokens(tokens);
    expect(parts.head).toEqual(tokens.slice(0, 60));
    expect(parts.tail).toEqual(tokens.slice(-20));
    expect(parts.hidden).toBe(847);
  });
});

describe("memoryText", () => {
  it("says what the attribution needs of the worker's memory", () => {
    const text = memoryText({ bytes: 92e9, budget_bytes: 141e9, batch_size: 64, max_feature_nodes: 5000, ranking_entries: null, refusal: "" });
    expect(text).toBe("Memory: about 92.0 GB of the worker's 141.0 GB (batch size 64, max_feature_nodes 5000)");
  });
  it("shows the refusal a job would fail with", () => {
    const refusal = "this prompt needs about 92.0 GB (...), this worker has 80.0 GB: set max_feature_nodes ≤ 4096";
    expect(memoryText({ bytes: null, budget_bytes: 80e9, batch_size: null, max_feature_nodes: 5000, ranking_entries: null, refusal })).toBe(`Memory: ${refusal}`);
  });
  it("counts small runs in megabytes", () => {
    expect(memoryText({ bytes: 12.3e6, budget_bytes: 8e9, batch_size: 256, max_feature_nodes: null, ranking_entries: null, refusal: "" })).toBe(
      "Memory: about 12.3 MB of the worker's 8.0 GB (batch size 256, max_feature_nodes all)",
    );
  });
  it("names the sparse ranking when the planner falls back to it", () => {
    const memory = { bytes: 71.2e9, budget_bytes: 80e9, batch_size: 32, max_feature_nodes: 8192, ranking_entries: 4096, refusal: "" };
    expect(memoryText(memory)).toBe(
      "Memory: about 71.2 GB of the worker's 80.0 GB (batch size 32, max_feature_nodes 8192, sparse ranking of 4096 entries a row)",
    );
  });
});
