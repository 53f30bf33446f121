// The subgraph's units: each supernode (a named group of pinned nodes) is one unit, every other
// pinned node is its own unit; edges between units are the sums of the member-to-member weights.

import type { Graph } from "./graph";

export interface Group {
  name: string;
  members: number[]; // node indices
}

export interface Unit {
  key: string; // "n:{node index}" or "g:{group index}"
  members: number[];
  group: number; // index into groups, -1 for a single node
}

export interface UnitEdge {
  from: number; // unit index
  to: number;
  weight: number; // summed signed weight
  count: number; // member edges summed
}

export interface Aggregate {
  units: Unit[];
  edges: UnitEdge[];
  unitOf: Map<number, number>; // node index -> unit index
}

export function aggregate(graph: Graph, pinned: readonly number[], groups: readonly Group[]): Aggregate {
  const units: Unit[] = [];
  const unitOf = new Map<number, number>();
  groups.forEach((group, g) => {
    const members = group.members.filter((i) => i >= 0 && i < graph.n && !unitOf.has(i));
    if (members.length === 0) return;
    for (const i of members) unitOf.set(i, units.length);
    units.push({ key: `g:${g}`, members, group: g });
  });
  for (const i of pinned) {
    if (i < 0 || i >= graph.n || unitOf.has(i)) continue;
    unitOf.set(i, units.length);
    units.push({ key: `n:${i}`, members: [i], group: -1 });
  }
  const sums = new Map<number, UnitEdge>();
  const nUnits = units.length;
  units.forEach((unit, u) => {
    for (const i of unit.members) {
      for (let j = graph.outStart[i]!; j < graph.outStart[i + 1]!; j++) {
        const e = graph.outEdges[j]!;
        const v = unitOf.get(graph.edgeDst[e]!);
        if (v === undefined || v === u) continue; // outside the subgraph, or inside one group
        const key = u * nUnits + v;
        let edge = sums.get(key);
        if (!edge) {
          edge = { from: u, to: v, weight: 0, count: 0 };
          sums.set(key, edge);
        }
        edge.weight += graph.edgeWeight[e]!;
        edge.count++;
      }
    }
  });
  return { units, edges: [...sums.values()], unitOf };
}

/** Group `members` under `name`: they leave any group they were in; emptied groups disappear. */
export function groupNodes(groups: readonly Group[], members: readonly number[], name: string): Group[] {
  const taken = new Set(members);
  const rest = groups
    .map((g) => ({ name: g.name, members: g.members.filter((i) => !taken.has(i)) }))
    .filter((g) => g.members.length > 0);
  return members.length ? [...rest, { name, members: [...taken] }] : rest;
}

export function ungroup(groups: readonly Group[], index: number): Group[] {
  return groups.filter((_, g) => g !== index);
}
