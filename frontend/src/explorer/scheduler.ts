// One requestAnimationFrame per frame for all drawing: layers mark themselves dirty and the
// frame callback repaints only those, in order. Timings are kept for the benchmark.

export type LayerName = "base" | "focus" | "hover";

export interface FrameStats {
  frames: { layers: LayerName[]; ms: number; latencyMs: number }[];
  firstDrawAt: number | null;
}

export class Scheduler {
  private dirty = new Set<LayerName>();
  private requested = false;
  private pendingSince = 0;
  readonly stats: FrameStats = { frames: [], firstDrawAt: null };

  constructor(private readonly paint: (layer: LayerName) => void) {}

  mark(...layers: LayerName[]): void {
    for (const layer of layers) this.dirty.add(layer);
    if (this.requested) return;
    this.requested = true;
    this.pendingSince = performance.now();
    requestAnimationFrame(() => this.frame());
  }

  /** Paint now, synchronously (exports and tests). */
  flush(): void {
    if (this.dirty.size) this.frame();
  }

  private frame(): void {
    this.requested = false;
    const layers = (["base", "focus", "hover"] as const).filter((l) => this.dirty.has(l));
    this.dirty.clear();
    const start = performance.now();
    for (const layer of layers) this.paint(layer);
    const end = performance.now();
    if (this.stats.frames.length > 2000) this.stats.frames.shift();
    this.stats.frames.push({ layers, ms: end - start, latencyMs: end - this.pendingSince });
    if (this.stats.firstDrawAt === null && layers.includes("base")) this.stats.firstDrawAt = end;
  }
}

/** Run `task` when the page is idle, or after `timeout` ms at the latest. */
export function whenIdle(task: () => void, timeout = 1000): void {
  if (typeof requestIdleCallback === "function") requestIdleCallback(task, { timeout });
  else setTimeout(task, 50);
}
