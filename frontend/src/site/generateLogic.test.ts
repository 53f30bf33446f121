import { describe, expect, it } from "vitest";
import { jobTick, type JobView } from "./followJob";
import { collapseTokens, describeJob, generateRequest } from "./generateLogic";

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
