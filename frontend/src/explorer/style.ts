// Styling derived by pure functions from data and state; nothing here mutates a node.

import { Kind } from "./graph";

export const COLORS = {
  ink: "#1d232b",
  muted: "#5d6773",
  grid: "#e6e7e2",
  feature: "#7f9bbd",
  featureStroke: "#44617f",
  error: "#c9c9c4",
  embedding: "#6b7785",
  logit: "#d9a13b",
  logitStroke: "#8a5d12",
  selected: "#1d232b",
  pinned: "#2c6bb3",
  search: "#e0701b",
  grouping: "#7b3fb3",
  positive: [44, 107, 179] as const,
  negative: [196, 60, 40] as const,
};

export function nodeFill(kind: Kind): string {
  switch (kind) {
    case Kind.Embedding:
      return COLORS.embedding;
    case Kind.Error:
      return COLORS.error;
    case Kind.Logit:
      return COLORS.logit;
    default:
      return COLORS.feature;
  }
}

/** Node glyph radius in pixels for a zoom level. */
export function nodeRadius(k: number): number {
  return Math.min(7, Math.max(1.6, k * 4.5));
}

export const ALPHA_BUCKETS = 5;
export const WIDTH_BUCKETS = 4;

/** Colour bucket of an edge: sign and share of the target's input (|share| in 0..1). */
export function edgeBucket(weight: number, share: number, relative: number): number {
  const a = Math.min(ALPHA_BUCKETS - 1, Math.floor(Math.sqrt(Math.abs(share)) * ALPHA_BUCKETS));
  const w = Math.min(WIDTH_BUCKETS - 1, Math.floor(Math.sqrt(relative) * WIDTH_BUCKETS));
  return (weight >= 0 ? 0 : 1) * ALPHA_BUCKETS * WIDTH_BUCKETS + a * WIDTH_BUCKETS + w;
}

export function bucketStyle(bucket: number): { color: string; width: number } {
  const sign = Math.floor(bucket / (ALPHA_BUCKETS * WIDTH_BUCKETS));
  const a = Math.floor(bucket / WIDTH_BUCKETS) % ALPHA_BUCKETS;
  const w = bucket % WIDTH_BUCKETS;
  const [r, g, b] = sign === 0 ? COLORS.positive : COLORS.negative;
  const alpha = 0.25 + (0.75 * (a + 1)) / ALPHA_BUCKETS;
  return { color: `rgba(${r},${g},${b},${alpha.toFixed(2)})`, width: 0.6 + w * 1.3 };
}

export const N_BUCKETS = 2 * ALPHA_BUCKETS * WIDTH_BUCKETS;

export function formatNumber(value: number, digits = 3): string {
  if (!Number.isFinite(value)) return "–";
  if (value !== 0 && Math.abs(value) < 10 ** -digits) return value.toExponential(1);
  return String(Number(value.toFixed(digits)));
}
