// The page's side of the loader worker (./loader.worker.ts): GraphParsers that run there. If the
// worker cannot start or fails (a policy blocks it, its script does not load), what was asked is
// done in this thread instead, so a page always gets its graph.

import type { Graph } from "./graph";
import type { DocumentNodes } from "./graphBinary";
import { thisThread, type GraphParsers, type LoadedGraph } from "./graphSource";
import type { LoaderReply, LoaderRequest } from "./loader.worker";
import { unpackNodes } from "./nodeColumns";

class WorkerFailed extends Error {}

type Answer = Exclude<LoaderReply, { ok: false }>;

export class LoaderWorker implements GraphParsers {
  private readonly pending = new Map<number, { resolve: (reply: Answer) => void; reject: (error: Error) => void }>();
  private nextId = 0;
  private failed = false;

  private constructor(private readonly worker: Worker) {
    worker.onmessage = (event: MessageEvent<LoaderReply>) => {
      const reply = event.data;
      const waiting = this.pending.get(reply.id);
      this.pending.delete(reply.id);
      if (reply.ok) waiting?.resolve(reply);
      else waiting?.reject(new Error(reply.message));
    };
    worker.onerror = (event) => {
      this.failed = true;
      for (const { reject } of this.pending.values()) reject(new WorkerFailed(event.message || "the loader worker failed"));
      this.pending.clear();
    };
  }

  /** A worker, or null where none can start. */
  static start(): LoaderWorker | null {
    if (typeof Worker === "undefined") return null;
    try {
      return new LoaderWorker(new Worker(new URL("./loader.worker.ts", import.meta.url), { type: "module" }));
    } catch {
      return null;
    }
  }

  private ask(request: LoaderRequest, transfer: ArrayBuffer[] = []): Promise<Answer> {
    return new Promise((resolve, reject) => {
      this.pending.set(request.id, { resolve, reject });
      this.worker.postMessage(request, transfer);
    });
  }

  async nodes(document: Uint8Array): Promise<DocumentNodes> {
    if (this.failed) return thisThread.nodes(document);
    // The document is handed over (transferred), not copied: the page keeps none of it.
    const reply = await this.ask({ id: this.nextId++, nodes: document }, [document.buffer as ArrayBuffer]);
    if (!("nodes" in reply)) throw new Error("the loader worker answered another question");
    return unpackNodes(reply.nodes);
  }

  async json(url: string): Promise<LoadedGraph> {
    if (this.failed) return thisThread.json(url);
    let reply: Answer;
    try {
      reply = await this.ask({ id: this.nextId++, json: url });
    } catch (error) {
      if (error instanceof WorkerFailed) return thisThread.json(url);
      throw error;
    }
    if (!("graph" in reply)) throw new Error("the loader worker answered another question");
    const t0 = performance.now();
    const graph: Graph = unpackNodes(reply.graph);
    return { graph, source: "json", ms: { ...reply.ms, unpack: performance.now() - t0 } };
  }

  terminate(): void {
    this.worker.terminate();
  }
}
