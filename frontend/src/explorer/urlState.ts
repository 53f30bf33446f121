// The explorer's state in the query string, in the parameter names Neuronpedia and
// attribution-graphs-frontend use (clickedId, pinnedIds, supernodes, clerps, linkType,
// pruningThreshold, densityThreshold) plus ours (edgeThreshold, view).
//
// parseUrlState never throws: anything malformed, oversized or of the wrong type is dropped and
// the rest is kept. Ids are only syntax-checked here; the caller drops ids the graph lacks.

export type LinkType = "both" | "input" | "output";

export interface Viewport {
  x: number; // world coordinate at the left edge of the canvas
  y: number; // world coordinate at the top edge
  k: number; // pixels per world x-unit
  ky: number; // pixels per world y-unit
}

export interface Supernode {
  name: string;
  ids: string[];
}

export interface UrlState {
  clickedId: string | null;
  pinnedIds: string[];
  supernodes: Supernode[];
  labels: [string, string][]; // [node id, label]
  linkType: LinkType;
  pruningThreshold: number | null;
  edgeThreshold: number | null;
  densityThreshold: number | null;
  viewport: Viewport | null;
}

export const LIMITS = {
  ids: 5000,
  idLength: 200,
  labelLength: 200,
  supernodes: 500,
  paramLength: 500_000,
};

const ID_PATTERN = /^[A-Za-z0-9_.\-:]+$/;

export function emptyUrlState(): UrlState {
  return {
    clickedId: null,
    pinnedIds: [],
    supernodes: [],
    labels: [],
    linkType: "both",
    pruningThreshold: null,
    edgeThreshold: null,
    densityThreshold: null,
    viewport: null,
  };
}

export function validId(value: unknown): value is string {
  return typeof value === "string" && value.length > 0 && value.length <= LIMITS.idLength && ID_PATTERN.test(value);
}

/** Plain text, no control characters, bounded. Rendered with textContent, never as HTML. */
export function cleanLabel(value: unknown): string {
  if (typeof value !== "string") return "";
  // eslint-disable-next-line no-control-regex
  return value.replace(/[\u0000-\u001f\u007f]/g, " ").trim().slice(0, LIMITS.labelLength);
}

function parseJson(text: string | null): unknown {
  if (!text || text.length > LIMITS.paramLength) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

function unitNumber(text: string | null): number | null {
  if (text === null || text.trim() === "") return null;
  const value = Number(text);
  if (!Number.isFinite(value)) return null;
  return Math.min(1, Math.max(0, value));
}

function uniqueIds(values: unknown[]): string[] {
  const seen = new Set<string>();
  for (const value of values) {
    if (seen.size >= LIMITS.ids) break;
    if (validId(value)) seen.add(value);
  }
  return [...seen];
}

export function parseSupernodes(value: unknown): Supernode[] {
  if (!Array.isArray(value)) return [];
  const out: Supernode[] = [];
  for (const entry of value.slice(0, LIMITS.supernodes)) {
    // Neuronpedia's form: [label, ...ids]
    if (!Array.isArray(entry) || entry.length < 2) continue;
    const ids = uniqueIds(entry.slice(1));
    if (ids.length === 0) continue;
    out.push({ name: cleanLabel(entry[0]) || "group", ids });
  }
  return out;
}

export function parseLabels(value: unknown): [string, string][] {
  const out = new Map<string, string>();
  // Neuronpedia's clerps are [[id, label], ...]; accept {id: label} too.
  const pairs: unknown[] = Array.isArray(value)
    ? value
    : typeof value === "object" && value !== null
      ? Object.entries(value)
      : [];
  for (const pair of pairs.slice(0, LIMITS.ids)) {
    if (!Array.isArray(pair) || pair.length < 2 || !validId(pair[0])) continue;
    const label = cleanLabel(pair[1]);
    if (label) out.set(pair[0], label);
  }
  return [...out];
}

function parseViewport(text: string | null): Viewport | null {
  if (!text || text.length > 100) return null;
  const parts = text.split(",").map(Number);
  if ((parts.length !== 3 && parts.length !== 4) || !parts.every(Number.isFinite)) return null;
  const [x, y, k] = parts as [number, number, number];
  const ky = parts[3] ?? k;
  const scaleOk = (v: number): boolean => v > 0 && v <= 1000;
  if (!scaleOk(k) || !scaleOk(ky) || Math.abs(x) > 1e7 || Math.abs(y) > 1e7) return null;
  return { x, y, k, ky };
}

export function parseUrlState(search: string): UrlState {
  const state = emptyUrlState();
  let params: URLSearchParams;
  try {
    params = new URLSearchParams(search.length > LIMITS.paramLength * 4 ? "" : search);
  } catch {
    return state;
  }
  const clicked = params.get("clickedId");
  state.clickedId = validId(clicked) ? clicked : null;
  const pinned = params.get("pinnedIds");
  if (pinned && pinned.length <= LIMITS.paramLength) state.pinnedIds = uniqueIds(pinned.split(","));
  state.supernodes = parseSupernodes(parseJson(params.get("supernodes")));
  state.labels = parseLabels(parseJson(params.get("clerps")));
  const linkType = params.get("linkType");
  if (linkType === "input" || linkType === "output" || linkType === "both") state.linkType = linkType;
  state.pruningThreshold = unitNumber(params.get("pruningThreshold"));
  state.edgeThreshold = unitNumber(params.get("edgeThreshold"));
  state.densityThreshold = unitNumber(params.get("densityThreshold"));
  state.viewport = parseViewport(params.get("view"));
  return state;
}

function round(value: number, digits: number): string {
  return String(Number(value.toFixed(digits)));
}

/** The query string (without "?"), keeping parameters this module does not own. */
export function serialiseUrlState(state: UrlState, keep: URLSearchParams = new URLSearchParams()): string {
  const params = new URLSearchParams();
  for (const [key, value] of keep) if (!OWN_KEYS.has(key)) params.append(key, value);
  if (state.clickedId) params.set("clickedId", state.clickedId);
  if (state.pinnedIds.length) params.set("pinnedIds", state.pinnedIds.join(","));
  if (state.supernodes.length) {
    params.set("supernodes", JSON.stringify(state.supernodes.map((s) => [s.name, ...s.ids])));
  }
  if (state.labels.length) params.set("clerps", JSON.stringify(state.labels));
  if (state.linkType !== "both") params.set("linkType", state.linkType);
  if (state.pruningThreshold !== null) params.set("pruningThreshold", round(state.pruningThreshold, 4));
  if (state.edgeThreshold !== null) params.set("edgeThreshold", round(state.edgeThreshold, 4));
  if (state.densityThreshold !== null) params.set("densityThreshold", round(state.densityThreshold, 6));
  if (state.viewport) {
    const { x, y, k, ky } = state.viewport;
    params.set("view", `${round(x, 1)},${round(y, 1)},${round(k, 5)},${round(ky, 5)}`);
  }
  return params.toString();
}

const OWN_KEYS = new Set([
  "clickedId",
  "pinnedIds",
  "supernodes",
  "clerps",
  "linkType",
  "pruningThreshold",
  "edgeThreshold",
  "densityThreshold",
  "view",
]);
