"""Graph diff speed: ``analysis.diff.diff_graphs`` on two 10,000-node graphs.

    .venv/bin/python benchmarks/graph_diff.py                      # 10,000 nodes, 200,000 links
    .venv/bin/python benchmarks/graph_diff.py --nodes 10000 --links 1000000 --runs 3

Graph A is the explorer benchmark's synthetic graph (tests/e2e/synthetic_graph.py); graph B is
A changed in known ways: one token replaced, 10% of the features dropped and as many new ones
added, every other feature's activation and influence moved, 10% of the links dropped, 10% added
and the rest reweighted. Reported, as medians over ``--runs``: the diff itself (both documents
already parsed, every edge compared, the ``--max-edges`` that changed most kept, as the API does),
the API body's JSON encoding, and, for scale, reading one stored artifact (gunzip + JSON parse),
which the endpoint does twice before diffing.
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
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analysis.diff import diff_graphs  # noqa: E402
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


def median_seconds(action: Any, runs: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = action()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--links", type=int, default=200_000)
    parser.add_argument("--max-edges", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    a = synthetic_graph(args.nodes, args.links, seed=1, slug="a")
    b = perturbed(a, seed=2)
    packed = gzip.compress(json.dumps(a).encode(), 6)
    diff_s, diff = median_seconds(lambda: diff_graphs(a, b, max_edges=args.max_edges), args.runs)
    body = {"nodes": diff.nodes, "edges": diff.edges, "summary": diff.summary}
    encode_s, text = median_seconds(lambda: json.dumps(body), args.runs)
    read_s, _ = median_seconds(lambda: json.loads(gzip.decompress(packed)), args.runs)
    print(f"graph A: {len(a['nodes']):,} nodes, {len(a['links']):,} links; "
          f"graph B: {len(b['nodes']):,} nodes, {len(b['links']):,} links")  # fmt: skip
    print(f"nodes: {diff.summary['feature']} (features); edges: {diff.summary['edges']}")
    print(f"diff_graphs:            {1000 * diff_s:8.1f} ms (median of {args.runs})")
    print(f"JSON body ({len(text) / 1e6:.1f} MB):     {1000 * encode_s:8.1f} ms")
    print(f"read one artifact:      {1000 * read_s:8.1f} ms ({len(packed) / 1e6:.1f} MB gzipped)")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
