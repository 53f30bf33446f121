// Suggested supernodes (POST .../supernode-suggestions, analysis/supernode_views.py) under review:
// which features to ask about, the answer read with care, accepting and rejecting suggestions,
// and undoing those decisions. Pure: the panel (./suggestPanel.ts) keeps a Review and applies
// the supernodes these functions return to the store.

import type { SuggestionResponse } from "../api/types";
import { Kind, type Graph } from "./graph";
import type { Group } from "./supernodes";
import { cleanLabel } from "./urlState";

/** The most node ids the endpoint takes (its `node_ids` max_length, graphs.serializers.MAX_PINNED). */
export const MAX_REQUEST_IDS = 5000;

// Tableau 10: told apart on white, and none is the compare overlay's red, blue or orange.
export const SUGGESTION_COLOURS = ["#59a14f", "#b07aa1", "#edc948", "#76b7b2", "#9c755f", "#ff9da7", "#4e79a7", "#f28e2b", "#e15759", "#bab0ac"];

export interface Suggestion {
  name: string;
  members: number[]; // node indices
  confidence: number; // 0-1
  layers: [number, number];
  positions: [number, number];
  colour: string;
}

export type Decision = "pending" | "accepted" | "rejected";

/** What a decision changes: the pinned nodes and the supernodes. */
export interface Supernodes {
  pinned: readonly number[];
  groups: readonly Group[];
}

interface UndoEntry {
  before: Supernodes;
  after: Supernodes;
  suggestions: readonly Suggestion[];
  decisions: readonly Decision[];
}

export interface Review {
  suggestions: readonly Suggestion[];
  decisions: readonly Decision[];
  undo: readonly UndoEntry[]; // last decision last
}

export const emptyReview: Review = { suggestions: [], decisions: [], undo: [] };

/** The features to ask about: the pinned ones when any pinned feature is not yet in a supernode,
 * else those the pruned view shows (most influential first, at most MAX_REQUEST_IDS). Features
 * already in a supernode are left out: a suggestion never takes a node from one. */
export function requestScope(
  graph: Graph,
  visible: Uint8Array,
  current: Supernodes,
): { from: "pins" | "view"; nodes: number[] } {
  const grouped = new Set(current.groups.flatMap((g) => g.members));
  const free = (i: number): boolean => graph.kind[i] === Kind.Feature && !grouped.has(i);
  const pins = current.pinned.filter(free);
  if (pins.length) return { from: "pins", nodes: pins.slice(0, MAX_REQUEST_IDS) };
  const inView: number[] = [];
  for (let i = 0; i < graph.n; i++) if (visible[i] === 1 && free(i)) inView.push(i);
  const weight = (i: number): number => (Number.isNaN(graph.influence[i]!) ? Infinity : graph.influence[i]!);
  // Influence is cumulative: the most influential nodes have the smallest values.
  if (inView.length > MAX_REQUEST_IDS) inView.sort((a, b) => weight(a) - weight(b));
  return { from: "view", nodes: inView.slice(0, MAX_REQUEST_IDS) };
}

function pair(value: unknown): [number, number] | null {
  if (!Array.isArray(value) || value.length !== 2 || !value.every((v) => Number.isInteger(v))) return null;
  return [value[0] as number, value[1] as number];
}

/** The endpoint's answer as suggestions on this graph. A malformed entry, a member this graph
 * lacks or a repeated one is dropped, and a suggestion left with fewer than two members with it;
 * never throws. */
export function parseSuggestions(graph: Graph, body: unknown): Suggestion[] {
  const raw = (body as Partial<SuggestionResponse> | null)?.suggestions;
  if (!Array.isArray(raw)) return [];
  const out: Suggestion[] = [];
  const taken = new Set<number>();
  for (const entry of raw as unknown[]) {
    if (typeof entry !== "object" || entry === null) continue;
    const e = entry as Record<string, unknown>;
    const layers = pair(e["layers"]);
    const positions = pair(e["positions"]);
    const confidence = e["confidence"];
    if (!Array.isArray(e["members"]) || !layers || !positions || typeof confidence !== "number" || !Number.isFinite(confidence)) continue;
    const members: number[] = [];
    for (const id of e["members"] as unknown[]) {
      const i = typeof id === "string" ? graph.index.get(id) : undefined;
      if (i === undefined || taken.has(i) || graph.kind[i] !== Kind.Feature) continue;
      members.push(i);
    }
    if (members.length < 2) continue;
    members.forEach((i) => taken.add(i));
    out.push({
      name: cleanLabel(e["name"]) || `suggestion ${out.length + 1}`,
      members,
      confidence: Math.min(1, Math.max(0, confidence)),
      layers,
      positions,
      colour: SUGGESTION_COLOURS[out.length % SUGGESTION_COLOURS.length]!,
    });
  }
  return out;
}

/** A new review of these suggestions; what can be undone so far stays undoable. */
export function startReview(previous: Review, suggestions: readonly Suggestion[]): Review {
  return { suggestions, decisions: suggestions.map(() => "pending"), undo: previous.undo };
}

/** The members of `suggestion` that accepting it would group: those in no supernode yet. */
export function freeMembers(groups: readonly Group[], suggestion: Suggestion): number[] {
  const grouped = new Set(groups.flatMap((g) => g.members));
  return suggestion.members.filter((i) => !grouped.has(i));
}

/** `name`, or `name (2)`, `name (3)`, ...: the first no supernode has. */
function uniqueName(groups: readonly Group[], name: string): string {
  const names = new Set(groups.map((g) => g.name));
  if (!names.has(name)) return name;
  for (let k = 2; ; k++) {
    const suffix = ` (${k})`;
    const candidate = name.slice(0, 200 - suffix.length) + suffix;
    if (!names.has(candidate)) return candidate;
  }
}

/** Whether accepting suggestion `k` would make a supernode (two of its members are still free). */
export function canAccept(review: Review, current: Supernodes, k: number): boolean {
  const suggestion = review.suggestions[k];
  return !!suggestion && review.decisions[k] === "pending" && freeMembers(current.groups, suggestion).length >= 2;
}

/**
 * Decide the pending suggestions `which`. Accepting one makes a supernode of its free members
 * (a hand-made supernode keeps its nodes), named as suggested, and pins them (a supernode's members
 * are pinned); one that cannot be accepted stays pending. Returns the review and the supernodes
 * after it; the decision is one undo step, unless it changed nothing.
 */
export function decide(review: Review, current: Supernodes, which: readonly number[], decision: "accepted" | "rejected"): { review: Review; supernodes: Supernodes } {
  let groups = current.groups;
  let pinned = current.pinned;
  const decisions = [...review.decisions];
  let changed = false;
  for (const k of which) {
    const suggestion = review.suggestions[k];
    if (!suggestion || decisions[k] !== "pending") continue;
    if (decision === "accepted") {
      const members = freeMembers(groups, suggestion);
      if (members.length < 2) continue;
      groups = [...groups, { name: uniqueName(groups, suggestion.name), members }];
      const isPinned = new Set(pinned);
      pinned = [...pinned, ...members.filter((i) => !isPinned.has(i))];
    }
    decisions[k] = decision;
    changed = true;
  }
  if (!changed) return { review, supernodes: current };
  const after = groups === current.groups ? current : { pinned, groups };
  const entry = { before: current, after, suggestions: review.suggestions, decisions: review.decisions };
  return { review: { ...review, decisions, undo: [...review.undo, entry] }, supernodes: after };
}

/** Pending suggestions, in their order. */
export function pending(review: Review): number[] {
  return review.decisions.flatMap((d, k) => (d === "pending" ? [k] : []));
}

/** Whether the last decision can be undone: there is one, and the supernodes are still those it
 * left (by identity: a supernode made, renamed or ungrouped by hand since is not overwritten). */
export function canUndo(review: Review, current: Supernodes): boolean {
  const last = review.undo[review.undo.length - 1];
  return !!last && last.after.groups === current.groups && last.after.pinned === current.pinned;
}

/** Takes back the last decision: the supernodes and pins exactly as they were before it, and its
 * suggestions pending again (the review it was made in, if a newer one replaced it). */
export function undoLast(review: Review, current: Supernodes): { review: Review; supernodes: Supernodes } | null {
  if (!canUndo(review, current)) return null;
  const last = review.undo[review.undo.length - 1]!;
  return {
    review: { suggestions: last.suggestions, decisions: last.decisions, undo: review.undo.slice(0, -1) },
    supernodes: last.before,
  };
}
