"""Graph diff speed: ``analysis.diff`` on two 10,000-node graphs, and what the endpoint does.

    .venv/bin/python benchmarks/graph_diff.py                      # 10,000 nodes, 200,000 links
    .venv/bin/python benchmarks/graph_diff.py --nodes 10000 --links 1000000 --runs 3
    .venv/bin/python benchmarks/graph_diff.py --out benchmarks/results/cpu-<date>-graph-diff.json

Graph A is the explorer benchmark's synthetic graph (tests/e2e/synthetic_graph.py); graph B is
A changed in known ways: one token replaced, 10% of the features dropped and as many new ones
added, every other feature's activation and influence moved, 10% of the links dropped, 10% added
and the rest reweighted. Reported, as medians over ``--runs`` of wall and CPU time: reading one
stored artifact (gunzip + JSON parse), preparing one graph (``prepare``), the diff of two prepared
graphs (every edge compared, the ``--max-edges`` that changed most kept, as the API does), the
whole ``diff_graphs`` of two documents, and the API body's JSON encoding. The endpoint
(analysis/diff_views.py) reads and prepares a graph the first time this process compares it,
then keeps it, and keeps the encoded diff of a pair (analysis/diff_cache.py); the sums printed
at the end are its work for a pair never seen, for a new pair of kept graphs, and (a lookup)
for a pair asked for before.
"""

from __future__ import annotations

import argparse
import copy
import gzip
import json
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analysis.diff import diff_graphs, diff_prepared, prepare  # noqa: E402
from tests.e2e.synthetic_graph import synthetic_graph  # noqa: E402


def perturbed(a: dict[str, Any], seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    b = copy.deepcopy(a)
    tokens = b["metadata"]["prompt_tokens"]
    tokens[len(tokens) // 2] = " replaced"
    features = [n for n in b["nodes"] if n["feature_type"] == "cross layer transcoder"]
    dropped = {n["node_id"] for n in rng.sample(features, len(features) // 10)}
    nodes = [n for n in b["nodes"] if n["node_id"] not in dropped]
    for node in nodes:
        if node["feature_type"] == "cross layer transcoder":
            node["activation"] = round(node["activation"] * rng.uniform(0.5, 1.5), 4)
            node["influence"] = round(min(1.0, node["influence"] * rng.uniform(0.8, 1.2)), 6)
    layers = {int(n["layer"]) for n in features}
    positions = len(tokens)
    taken = {n["node_id"] for n in nodes}
    added: list[dict[str, Any]] = []
    while len(added) < len(dropped):
        layer, pos, index = (
            rng.choice(sorted(layers)),
            rng.randrange(1, positions),
            16384 + rng.randrange(16384),
        )
        node_id = f"{layer}_{index}_{pos}"
        if node_id in taken:
            continue
        taken.add(node_id)
        added.append(
            {**features[0], "node_id": node_id, "layer": str(layer), "ctx_idx": pos,
             "activation": round(rng.uniform(0.1, 12.0), 4), "influence": rng.random()}
        )  # fmt: skip
    b["nodes"] = nodes + added
    links = [
        link
        for link in b["links"]
        if link["source"] not in dropped and link["target"] not in dropped
    ]
    links = [
        {**link, "weight": link["weight"] * rng.uniform(0.5, 1.5)}
        for link in links
        if rng.random() > 0.1
    ]
    logits = [n["node_id"] for n in nodes if n["feature_type"] == "logit"]
    for node in added:
        links.append(
            {"source": node["node_id"], "target": rng.choice(logits), "weight": rng.gauss(0, 1)}
        )
    while len(links) < len(a["links"]):
        source = rng.choice(added)["node_id"]
        links.append({"source": source, "target": rng.choice(logits), "weight": rng.gauss(0, 1)})
    b["links"] = links
    return b


def timed(action: Any, runs: int) -> tuple[dict[str, float], Any]:
    """Median wall and CPU seconds of ``action`` over ``runs``, and its last result."""
    wall, cpu, result = [], [], None
    for _ in range(runs):
        started, started_cpu = time.perf_counter(), time.process_time()
        result = action()
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return {"wall_s": statistics.median(wall), "cpu_s": statistics.median(cpu)}, result


def encode(body: dict[str, Any]) -> bytes:
    # As the API's renderer does (DRF's JSONRenderer: compact, UTF-8, no NaN).
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--links", type=int, default=200_000)
    parser.add_argument("--max-edges", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args()

    a = synthetic_graph(args.nodes, args.links, seed=1, slug="a")
    b = perturbed(a, seed=2)
    packed = gzip.compress(json.dumps(a).encode(), 6)
    load_before = os.getloadavg()
    figures: dict[str, dict[str, float]] = {}
    figures["read_artifact"], _ = timed(lambda: json.loads(gzip.decompress(packed)), args.runs)
    figures["prepare"], prepared_b = timed(lambda: prepare(b), args.runs)
    prepared_a = prepare(a)
    figures["diff_prepared"], diff = timed(
        lambda: diff_prepared(prepared_a, prepared_b, max_edges=args.max_edges), args.runs
    )
    figures["diff_graphs"], _ = timed(
        lambda: diff_graphs(a, b, max_edges=args.max_edges), args.runs
    )
    body = {
        "alignment": [vars(p) for p in diff.alignment],
        "summary": diff.summary,
        "nodes": diff.nodes,
        "edges": diff.edges,
        "edges_total": diff.edges_total,
    }
    figures["encode"], text = timed(lambda: encode(body), args.runs)
    load_after = os.getloadavg()

    def total(*parts: str, times: dict[str, int] | None = None) -> dict[str, float]:
        return {
            clock: sum(figures[p][clock] * (times or {}).get(p, 1) for p in parts)
            for clock in ("wall_s", "cpu_s")
        }

    endpoint = {
        "new_pair_of_new_graphs": total(
            "read_artifact", "prepare", "diff_prepared", "encode",
            times={"read_artifact": 2, "prepare": 2},
        ),
        "new_pair_of_kept_graphs": total("diff_prepared", "encode"),
    }  # fmt: skip
    print(f"graph A: {len(a['nodes']):,} nodes, {len(a['links']):,} links; "
          f"graph B: {len(b['nodes']):,} nodes, {len(b['links']):,} links")  # fmt: skip
    print(f"nodes: {diff.summary['feature']} (features); edges: {diff.summary['edges']}")
    print(f"medians of {args.runs} runs          wall      CPU")
    labels = {
        "read_artifact": f"read one artifact ({len(packed) / 1e6:.1f} MB gz)",
        "prepare": "prepare one graph",
        "diff_prepared": "diff of two prepared",
        "diff_graphs": "diff_graphs (both)",
        "encode": f"JSON body ({len(text) / 1e6:.1f} MB)",
    }
    for key, label in labels.items():
        print(f"  {label:28} {figures[key]['wall_s']:6.3f} s {figures[key]['cpu_s']:6.3f} s")
    print("endpoint's work (sums of the above):")
    for key, value in endpoint.items():
        print(f"  {key.replace('_', ' '):28} {value['wall_s']:6.3f} s {value['cpu_s']:6.3f} s")
    print("  pair asked for before        a lookup in memory (the encoded diff is kept)")
    load = " ".join(f"{x:.2f}" for x in load_after)
    print(f"load average: before {' '.join(f'{x:.2f}' for x in load_before)}, after {load}")
    if args.out:
        result = {
            "benchmark": "graph_diff",
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "graph_a": {"nodes": len(a["nodes"]), "links": len(a["links"])},
            "graph_b": {"nodes": len(b["nodes"]), "links": len(b["links"])},
            "body_bytes": len(text),
            "figures": figures,
            "endpoint": endpoint,
            "load_average_before": list(load_before),
            "load_average_after": list(load_after),
        }
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
