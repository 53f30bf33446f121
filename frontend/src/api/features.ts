// Bulk feature lookup with batching and a cache: panels ask for one feature at a time, requests
// made in the same few milliseconds go out as one POST /api/v1/features/lookup (at most 100 keys),
// and every answer (found or missing) is remembered for the page's life.

import type {
  ActivationExample,
  Explanation,
  FeatureDetail,
  FeatureKey,
  Include,
  LookupRequest,
  ServerExample,
  ServerExplanation,
  ServerFeature,
} from "./types";

export type FeatureResult = FeatureDetail | "missing" | "error";

const BATCH = 100;
const WINDOW_MS = 15;

export function keyString(key: FeatureKey): string {
  return `${key.model}/${key.set}/${key.layer}/${key.index}`;
}

function finite(value: unknown): number | null {
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}

function strings(value: unknown, limit = 512): string[] {
  return Array.isArray(value) ? value.slice(0, limit).map((t) => (typeof t === "string" ? t : String(t))) : [];
}

function numbers(value: unknown, limit = 512): number[] {
  return Array.isArray(value) ? value.slice(0, limit).map((v) => (typeof v === "number" && Number.isFinite(v) ? v : 0)) : [];
}

/** Output tokens with their values: the API's strings plus a parallel `*_values` list (empty when
 * unknown), or pairs / {token, value} objects as graph files carry them. NaN = no value. */
function logits(value: unknown, values?: unknown): [string, number][] {
  if (!Array.isArray(value)) return [];
  const parallel = Array.isArray(values) ? values : [];
  const out: [string, number][] = [];
  for (const [k, entry] of value.slice(0, 50).entries()) {
    if (Array.isArray(entry) && typeof entry[0] === "string") out.push([entry[0], finite(entry[1]) ?? NaN]);
    else if (typeof entry === "string") out.push([entry, finite(parallel[k]) ?? NaN]);
    else if (typeof entry === "object" && entry !== null) {
      const e = entry as Record<string, unknown>;
      if (typeof e["token"] === "string") out.push([e["token"], finite(e["value"] ?? e["weight"]) ?? NaN]);
    }
  }
  return out;
}

/**
 * Histograms come as counts per bin over [act_min, act_max] (circuit-tracer's feature JSON, which
 * is what the API stores) or as {edges, counts}.
 */
function parseHistogram(raw: unknown, lo: number | null, hi: number | null): FeatureDetail["histogram"] {
  if (Array.isArray(raw)) {
    const counts = numbers(raw, 1000);
    if (!counts.length || lo === null || hi === null || hi <= lo) return null;
    const edges = Array.from({ length: counts.length + 1 }, (_, k) => lo + ((hi - lo) * k) / counts.length);
    return { edges, counts };
  }
  if (raw && typeof raw === "object") {
    const h = raw as Record<string, unknown>;
    if (Array.isArray(h["counts"]) && Array.isArray(h["edges"])) {
      return { edges: numbers(h["edges"], 1001), counts: numbers(h["counts"], 1000) };
    }
  }
  return null;
}

// Field names come from the generated schema: renaming one on the server fails the typecheck.
const featureField = (r: Record<string, unknown>, key: keyof ServerFeature): unknown => r[key];
const exampleField = (r: Record<string, unknown>, key: keyof ServerExample): unknown => r[key];
const explanationField = (r: Record<string, unknown>, key: keyof ServerExplanation): unknown => r[key];

/** Normalise one result object from the server; anything unexpected becomes empty, not a crash. */
export function normaliseFeature(raw: unknown): FeatureDetail | null {
  if (typeof raw !== "object" || raw === null) return null;
  const r = raw as Record<string, unknown>;
  const rawExplanations = featureField(r, "explanations");
  const explanations: Explanation[] = Array.isArray(rawExplanations)
    ? (rawExplanations as unknown[])
        .filter((e): e is Record<string, unknown> => typeof e === "object" && e !== null && typeof (e as Record<string, unknown>)["text"] === "string")
        .slice(0, 20)
        .map((e) => {
          const method = explanationField(e, "method");
          const author = explanationField(e, "author");
          return {
            text: String(explanationField(e, "text")).slice(0, 1000),
            ...(typeof method === "string" && method ? { method } : {}),
            ...(typeof author === "string" && author ? { author } : {}),
            score: finite(explanationField(e, "score")),
          };
        })
    : [];
  const rawExamples = featureField(r, "examples") ?? r["activations"];
  const activations: ActivationExample[] = Array.isArray(rawExamples)
    ? (rawExamples as unknown[])
        .filter((a): a is Record<string, unknown> => typeof a === "object" && a !== null)
        .slice(0, 20)
        .map((a) => {
          const example: ActivationExample = {
            tokens: strings(exampleField(a, "tokens")),
            values: numbers(exampleField(a, "values") ?? a["tokens_acts_list"]),
          };
          const max = finite(exampleField(a, "max_value"));
          if (max !== null) example.max_value = max;
          const quantile = exampleField(a, "quantile");
          if (typeof quantile === "string") example.quantile = quantile;
          return example;
        })
    : [];
  const histogram = parseHistogram(featureField(r, "histogram"), finite(featureField(r, "act_min")), finite(featureField(r, "act_max")));
  return {
    layer: finite(featureField(r, "layer")) ?? -1,
    index: finite(featureField(r, "index")) ?? -1,
    density: finite(featureField(r, "density")),
    max_activation: finite(featureField(r, "max_activation")),
    explanations,
    top_logits: logits(featureField(r, "top_logits"), featureField(r, "top_logits_values")),
    bottom_logits: logits(featureField(r, "bottom_logits"), featureField(r, "bottom_logits_values")),
    histogram,
    activations,
  };
}

function csrfToken(): string {
  if (typeof document === "undefined") return "";
  const match = /(?:^|;\s*)csrftoken=([^;]+)/.exec(document.cookie);
  return match?.[1] ? decodeURIComponent(match[1]) : "";
}

export class FeatureLookup {
  private readonly cache = new Map<string, Promise<FeatureResult>>();
  private readonly settled = new Map<string, FeatureResult>();
  private queue: { key: FeatureKey; resolve: (r: FeatureResult) => void }[] = [];
  private timer: ReturnType<typeof setTimeout> | null = null;
  requests = 0;

  constructor(
    private readonly url: string,
    private readonly fetcher: typeof fetch = (...args) => fetch(...args),
  ) {}

  /** The cached answer, if it has arrived. */
  peek(key: FeatureKey): FeatureResult | undefined {
    return this.settled.get(keyString(key));
  }

  get(key: FeatureKey): Promise<FeatureResult> {
    const k = keyString(key);
    let promise = this.cache.get(k);
    if (!promise) {
      promise = new Promise<FeatureResult>((resolve) => {
        this.queue.push({ key, resolve });
        if (this.queue.length >= BATCH) this.flush();
        else this.timer ??= setTimeout(() => this.flush(), WINDOW_MS);
      }).then((result) => {
        this.settled.set(k, result);
        if (result === "error") this.cache.delete(k); // a later hover may retry
        return result;
      });
      this.cache.set(k, promise);
    }
    return promise;
  }

  /**
   * Explanations and densities for many features at once (search, density filter): chunks of
   * 1,000 keys, explanations only, kept apart from the full details the feature panel asks for.
   */
  async summaries(keys: FeatureKey[], onChunk: (found: Map<string, FeatureDetail>) => void): Promise<void> {
    for (let k = 0; k < keys.length; k += 1000) {
      const chunk = keys.slice(k, k + 1000);
      const found = await this.post(chunk, ["explanations"], 0).catch(() => null);
      if (!found) return; // no lookup API (yet): nothing to add
      onChunk(found);
    }
  }

  private async post(keys: FeatureKey[], include: Include[], maxActivations: number): Promise<Map<string, FeatureDetail>> {
    const body: LookupRequest = { features: keys, include, max_activations: maxActivations };
    this.requests++;
    const response = await this.fetcher(this.url, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() },
      credentials: "same-origin",
      body: JSON.stringify(body),
    });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const data = (await response.json()) as Record<string, unknown>;
    const results = Array.isArray(data["results"]) ? (data["results"] as unknown[]) : [];
    const byKey = new Map<string, FeatureDetail>();
    for (const raw of results) {
      const detail = normaliseFeature(raw);
      const r = raw as Record<string, unknown> | null;
      if (!detail || !r) continue;
      const model = typeof r["model"] === "string" ? r["model"] : null;
      const set = typeof r["set"] === "string" ? r["set"] : null;
      const match = keys.find(
        (key) => key.layer === detail.layer && key.index === detail.index && (model === null || key.model === model) && (set === null || key.set === set),
      );
      if (match) byKey.set(keyString(match), detail);
    }
    return byKey;
  }

  private flush(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    while (this.queue.length) {
      const batch = this.queue.splice(0, BATCH);
      void this.send(batch);
    }
  }

  private async send(batch: { key: FeatureKey; resolve: (r: FeatureResult) => void }[]): Promise<void> {
    try {
      // Results come in request order; a key without a result (or listed in `missing`) is missing.
      const found = await this.post(batch.map((b) => b.key), ["explanations", "logits", "activations", "histogram"], 5);
      for (const b of batch) b.resolve(found.get(keyString(b.key)) ?? "missing");
    } catch {
      for (const b of batch) b.resolve("error");
    }
  }
}
