// Following a job until it ends, for every page that starts one (the generate page, the
// explorer's Test panel): its websocket's events folded into a view by `jobTick`, and when the
// socket cannot open or drops, the job's row polled instead (docs/jobs.md, "Websocket").

import type { components as Events } from "../api/job-events";
import type { components } from "../api/schema";
import { sendJson } from "./dom";

type Schemas = components["schemas"];
export type JobStatus = Schemas["JobStatusEnum"];
/** A websocket message (the contract in ../api/job-events.yaml, checked against jobs/ by a test). */
export type JobEvent = Events["schemas"]["JobEvent"];

/** What a page shows of a job: the Job resource's live fields, updated by events. */
export type JobView = { -readonly [K in "id" | "status" | "phase" | "percent" | "position" | "error" | "graph" | "url" | "websocket"]: Schemas["Job"][K] };

const STATUSES: readonly string[] = ["queued", "running", "succeeded", "failed", "cancelled"] satisfies JobStatus[];
const FINAL: readonly string[] = ["succeeded", "failed", "cancelled"] satisfies JobStatus[];

export function isFinal(view: JobView): boolean {
  return FINAL.includes(view.status);
}

/** A steering run's job as a view; it has no queue position or graph until an event says so. */
export function runJobView(job: Schemas["RunJob"]): JobView {
  const status = STATUSES.includes(job.status) ? (job.status as JobStatus) : "queued";
  return { id: job.id, status, phase: job.phase, percent: job.percent, position: null, error: job.error, graph: null, url: job.url, websocket: job.websocket };
}

/** A polled Job row as the `state` event a (re)connecting socket would have sent. */
export function stateEvent(row: Schemas["Job"]): JobEvent {
  const { id, status, phase, percent, position, attempts, error, graph, run } = row;
  return { type: "state", job: id, status, phase, percent, position, attempts, error, graph, run };
}

/** The job after one event; percent never goes back (an event may be older than `state`). */
export function jobTick(view: JobView, event: JobEvent): JobView {
  if (isFinal(view)) return view;
  const next: JobView = { ...view };
  const percent = (p: unknown): void => {
    if (typeof p === "number" && Number.isFinite(p)) next.percent = Math.max(next.percent ?? 0, Math.min(100, p));
  };
  switch (event.type) {
    case "state":
      if (STATUSES.includes(event.status)) next.status = event.status;
      if (typeof event.phase === "string") next.phase = event.phase;
      percent(event.percent);
      next.position = event.position ?? null;
      if (typeof event.error === "string") next.error = event.error;
      if (event.graph) next.graph = event.graph;
      break;
    case "queued":
      next.position = event.position ?? null;
      break;
    case "running":
      next.status = "running";
      next.position = null;
      break;
    case "progress":
      next.status = "running";
      if (typeof event.phase === "string") next.phase = event.phase;
      percent(event.percent);
      break;
    case "requeued":
      next.status = "queued";
      next.phase = "";
      break;
    case "done":
      next.status = "succeeded";
      next.percent = 100;
      if (event.graph) next.graph = event.graph;
      break;
    case "failed":
      next.status = "failed";
      next.error = event.message ?? next.error ?? "";
      break;
    case "cancelled":
      next.status = "cancelled";
      break;
  }
  return next;
}

/** The part of a WebSocket followJob uses (a test hands in its own). */
export interface JobSocket {
  addEventListener(type: "message", listener: (event: { data: unknown }) => void): void;
  addEventListener(type: "close" | "error", listener: () => void): void;
  close(): void;
}

export interface FollowOptions {
  /** How often the job's row is read once the socket is gone. */
  pollMs: number;
  /** Opens the socket at the job's websocket path; by default a WebSocket to this host. */
  openSocket?: (path: string) => JobSocket;
  /** Reads a URL as JSON; by default `sendJson` (same-origin, with the CSRF header). */
  getJson?: (url: string) => Promise<{ status: number; body: unknown }>;
}

export interface Following {
  /** The job as it ended (succeeded, failed or cancelled). */
  finished: Promise<JobView>;
  /** Stops listening and polling (the page is leaving, or no longer cares). */
  stop: () => void;
}

function openWebSocket(path: string): JobSocket {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return new WebSocket(`${scheme}//${location.host}${path}`);
}

/**
 * Follows `job` until it ends, calling `onChange` with each new view. Events come from the job's
 * websocket; if it cannot be opened, closes or errs before the end, the row is polled instead
 * (a polled row is folded in as a `state` event, so both paths share `jobTick`).
 */
export function followJob(job: JobView, onChange: (view: JobView) => void, options: FollowOptions): Following {
  const open = options.openSocket ?? openWebSocket;
  const getJson = options.getJson ?? ((url: string) => sendJson(url, "GET", undefined));
  let view = job;
  let socket: JobSocket | null = null;
  let poll: ReturnType<typeof setInterval> | null = null;
  let stopped = false;
  let resolve: (view: JobView) => void = () => undefined;
  const finished = new Promise<JobView>((r) => (resolve = r));

  const stop = (): void => {
    if (stopped) return;
    stopped = true;
    socket?.close();
    if (poll !== null) clearInterval(poll);
  };
  const apply = (event: JobEvent): void => {
    if (stopped) return;
    view = jobTick(view, event);
    onChange(view);
    if (isFinal(view)) {
      stop();
      resolve(view);
    }
  };
  const startPolling = (): void => {
    if (poll !== null || stopped) return;
    poll = setInterval(() => {
      getJson(job.url).then(
        (reply) => {
          if (reply.status === 200 && typeof reply.body === "object" && reply.body !== null) {
            apply(stateEvent(reply.body as Schemas["Job"]));
          }
        },
        () => undefined, // unreachable for now: the next tick tries again
      );
    }, options.pollMs);
  };

  if (isFinal(view)) {
    stopped = true;
    resolve(view);
    return { finished, stop };
  }
  try {
    socket = open(job.websocket);
    socket.addEventListener("message", (event) => {
      let data: JobEvent;
      try {
        data = JSON.parse(String(event.data)) as JobEvent;
      } catch {
        return;
      }
      if (typeof data === "object" && data !== null && typeof data.type === "string") apply(data);
    });
    socket.addEventListener("close", startPolling);
    socket.addEventListener("error", startPolling);
  } catch {
    startPolling();
  }
  return { finished, stop };
}
