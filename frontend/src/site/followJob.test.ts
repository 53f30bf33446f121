import { describe, expect, it } from "vitest";
import { followJob, jobTick, type JobSocket, type JobView } from "./followJob";

const GRAPH = { model: "m", slug: "s", page_url: "/graphs/m/s", url: "/api/v1/graphs/m/s", artifact_url: "/api/v1/graphs/m/s/artifact" };
const job: JobView = { id: "j", status: "queued", phase: "", percent: 0, position: 2, error: "", graph: null, url: "/api/v1/jobs/j", websocket: "/ws/jobs/j/" };

/** A socket the test speaks for: `send` delivers a message, `drop` closes it from the far end. */
class ScriptedSocket implements JobSocket {
  readonly listeners = { message: [] as ((event: { data: unknown }) => void)[], close: [] as (() => void)[], error: [] as (() => void)[] };
  closed = false;
  addEventListener(type: "message" | "close" | "error", listener: ((event: { data: unknown }) => void) & (() => void)): void {
    this.listeners[type].push(listener);
  }
  close(): void {
    this.closed = true;
  }
  send(event: object | string): void {
    for (const l of this.listeners.message) l({ data: typeof event === "string" ? event : JSON.stringify(event) });
  }
  drop(): void {
    this.closed = true;
    for (const l of this.listeners.close) l();
  }
}

/** The fields of GET /api/v1/jobs/j that followJob reads (the rest of the Job is left out). */
const ROW = { id: "j", status: "queued", phase: "", percent: 0, position: null, attempts: 1, error: "", graph: null, run: null, url: job.url, websocket: job.websocket };

/** The job's row as the API would answer it, one row per read (the last one repeats). */
function jobRows(rows: object[]): { getJson: (url: string) => Promise<{ status: number; body: unknown }>; hits: () => number } {
  let hits = 0;
  const getJson = async (url: string): Promise<{ status: number; body: unknown }> => {
    const row = rows[Math.min(hits, rows.length - 1)];
    hits++;
    return url === job.url ? { status: 200, body: structuredClone(row) } : { status: 404, body: null };
  };
  return { getJson, hits: () => hits };
}

describe("jobTick", () => {
  it("keeps a final view as it is", () => {
    const done = jobTick(job, { type: "done", job: "j", graph: GRAPH });
    expect(jobTick(done, { type: "progress", job: "j", phase: "attribution", percent: 10 })).toBe(done);
  });
});

describe("followJob", () => {
  it("folds the socket's events into views until the job ends, then closes the socket", async () => {
    const socket = new ScriptedSocket();
    const seen: string[] = [];
    const following = followJob(job, (v) => seen.push(`${v.status} ${v.percent} ${v.position}`), { pollMs: 10, openSocket: () => socket, getJson: () => Promise.reject(new Error("no polling while the socket is open")) });
    socket.send({ type: "state", job: "j", status: "queued", phase: "", percent: 0, position: 1, attempts: 0, error: "", graph: null, run: null });
    socket.send("not json");
    socket.send({ type: "running", job: "j", attempt: 1, worker: "gpu0@a" });
    socket.send({ type: "progress", job: "j", phase: "attribution", percent: 40 });
    socket.send({ type: "done", job: "j", graph: GRAPH });
    const end = await following.finished;
    expect(seen).toEqual(["queued 0 1", "running 0 null", "running 40 null", "succeeded 100 null"]);
    expect(end.graph?.page_url).toBe("/graphs/m/s");
    expect(socket.closed).toBe(true);
  });

  it("polls the job's row once the socket closes, and stops polling when it ends", async () => {
    const { getJson, hits } = jobRows([
      { ...ROW, status: "running", phase: "attribution", percent: 70 },
      { ...ROW, status: "failed", phase: "", percent: 70, error: "out of memory" },
    ]);
    const socket = new ScriptedSocket();
    const seen: string[] = [];
    const following = followJob(job, (v) => seen.push(`${v.status} ${v.percent}`), { pollMs: 5, openSocket: () => socket, getJson });
    socket.send({ type: "progress", job: "j", phase: "attribution", percent: 30 });
    socket.drop();
    const end = await following.finished;
    expect(seen).toEqual(["running 30", "running 70", "failed 70"]);
    expect(end.error).toBe("out of memory");
    const polled = hits();
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(hits()).toBe(polled);
  });

  it("polls from the start when the socket cannot be opened", async () => {
    const { getJson } = jobRows([{ ...ROW, status: "cancelled" }]);
    const following = followJob(job, () => undefined, { pollMs: 5, openSocket: () => { throw new Error("blocked"); }, getJson });
    expect((await following.finished).status).toBe("cancelled");
  });

  it("stops when asked: no more views, no more polling", async () => {
    const { getJson, hits } = jobRows([{ ...ROW, status: "running", phase: "attribution", percent: 1 }]);
    const socket = new ScriptedSocket();
    const seen: JobView[] = [];
    const following = followJob(job, (v) => seen.push(v), { pollMs: 5, openSocket: () => socket, getJson });
    following.stop();
    socket.drop();
    socket.send({ type: "running", job: "j", attempt: 1, worker: "gpu0@a" });
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(seen).toEqual([]);
    expect(hits()).toBe(0);
  });
});
