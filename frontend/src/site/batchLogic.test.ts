import { describe, expect, it } from "vitest";
import { batchActive, batchCounts, batchErrors, jobStatusText, maxListBytes, parseBatch } from "./batchLogic";

const limits = { maxPrompts: 3, maxChars: 10 };

describe("parseBatch", () => {
  it("takes one prompt a line, skips blank lines and keeps each prompt as typed", () => {
    const { lines, errors } = parseBatch("The cat\r\n\n   \n The dog \rA bird", limits);
    expect(errors).toEqual([]);
    expect(lines).toEqual([
      { line: 1, text: "The cat" },
      { line: 4, text: " The dog " },
      { line: 5, text: "A bird" },
    ]);
  });
  it("names the limit on the number of prompts", () => {
    const { errors } = parseBatch("a\nb\nc\nd", limits);
    expect(errors).toEqual(["4 prompts: at most 3 in one batch (JOBS_BATCH_MAX_PROMPTS)."]);
  });
  it("names each line that is too long, by its line number", () => {
    const { errors } = parseBatch("short\n\n0123456789X", limits);
    expect(errors).toEqual(["Line 3: 11 characters; a prompt has at most 10."]);
  });
  it("asks for a prompt when the list is empty", () => {
    expect(parseBatch(" \n\n", limits).errors).toEqual(["Give at least one prompt, one per line."]);
  });
  it("sizes a file of the longest list allowed", () => {
    expect(maxListBytes({ maxPrompts: 100, maxChars: 8000 })).toBe(100 * 32002);
  });
});

describe("batchErrors", () => {
  it("puts the API's per-prompt errors on the lines they came from, blank lines counted", () => {
    const { lines } = parseBatch("a\n\nb\nc", limits);
    const { prompts, others } = batchErrors({ "prompts[1]": "the prompt has 80 tokens; tiny allows at most 64", "prompts[2]": "too long", max_n_logits: "too big" }, lines);
    expect(prompts).toEqual(["Line 3: the prompt has 80 tokens; tiny allows at most 64", "Line 4: too long"]);
    expect(others).toEqual({ max_n_logits: "too big" });
  });
  it("keeps the list's own error and an index it cannot place", () => {
    const { prompts } = batchErrors({ prompts: "at most 100 prompts in one batch", "prompts[7]": "empty" }, []);
    expect(prompts).toEqual(["at most 100 prompts in one batch", "Prompt 8: empty"]);
  });
});

describe("the batch on My jobs", () => {
  it("reads a job's status as the page's template does", () => {
    expect(jobStatusText({ status: "running", phase: "features", percent: 41.6 })).toBe("Running: features (42%)");
    expect(jobStatusText({ status: "running", phase: "", percent: 0 })).toBe("Running");
    expect(jobStatusText({ status: "queued", phase: "", percent: 0 })).toBe("Queued");
  });
  it("counts in lifecycle order and follows the batch until every job ended", () => {
    expect(batchCounts({ succeeded: 2, queued: 1, failed: 0, running: 1 })).toBe("1 queued, 1 running, 2 succeeded");
    expect(batchActive({ jobs: [{ status: "succeeded" }, { status: "running" }] })).toBe(true);
    expect(batchActive({ jobs: [{ status: "succeeded" }, { status: "failed" }] })).toBe(false);
  });
});
