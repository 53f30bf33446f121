"""How long do supernode suggestions take on a large pruned graph?

    .venv/bin/python -m benchmarks.supernodes_speed [--nodes 5000] [--links 150000] [--d-model 2304]
        [--out benchmarks/results/cpu-<date>-supernodes-speed.json]

A synthetic graph shaped like a pruned gemma-2-2b graph: 26 layers, 12 prompt positions with a
third of the features at the last one, the rest of the nodes embeddings, errors and logits,
links from earlier to later nodes, a decoder direction of ``--d-model`` floats for every
feature and top logits for every feature. Prints the median wall time of ``suggest`` over
``--repeat`` runs (and the first run, which includes numpy's warm-up) and its CPU time, with the
load average. ``suggest`` runs numpy's matrix products on one BLAS thread (analysis/blas.py).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from analysis import supernodes

N_LAYERS = 26
N_POS = 12


def synthetic(n_nodes: int, n_links: int, d_model: int, seed: int = 0) -> tuple:
    rng = np.random.default_rng(seed)
    nodes = [
        {"node_id": f"E_{p}_{p}", "feature_type": "embedding", "ctx_idx": p} for p in range(N_POS)
    ]
    nodes += [
        {"node_id": f"{layer}_-1_{p}", "feature_type": "mlp reconstruction error", "ctx_idx": p}
        for layer in range(N_LAYERS)
        for p in range(N_POS)
    ]
    nodes += [
        {
            "node_id": f"{N_LAYERS + 1}_{v}_{N_POS - 1}",
            "feature_type": "logit",
            "ctx_idx": N_POS - 1,
        }
        for v in range(10)
    ]
    n_features = n_nodes - len(nodes)
    last = rng.random(n_features) < 1 / 3
    positions = np.where(last, N_POS - 1, rng.integers(0, N_POS - 1, n_features))
    layers = rng.integers(0, N_LAYERS, n_features)
    seen: set[tuple[int, int, int]] = set()
    for layer, pos in zip(layers, positions, strict=True):
        index = int(rng.integers(0, 16384))
        while (layer, index, pos) in seen:
            index = int(rng.integers(0, 16384))
        seen.add((int(layer), index, int(pos)))
        nodes.append(
            {
                "node_id": f"{layer}_{index}_{pos}",
                "feature_type": "cross layer transcoder",
                "layer": str(layer),
                "ctx_idx": int(pos),
            }
        )
    ids = [n["node_id"] for n in nodes]
    sources = rng.integers(0, len(ids), n_links)
    targets = rng.integers(0, len(ids), n_links)
    weights = rng.standard_normal(n_links)
    links = [
        {"source": ids[s], "target": ids[t], "weight": float(w)}
        for s, t, w in zip(sources, targets, weights, strict=True)
        if s != t
    ]
    keys = {(layer, index) for layer, index, _ in seen}
    decoders = {k: rng.standard_normal(d_model).astype(np.float32) for k in keys}
    vocabulary = [f" tok{i}" for i in range(2000)]
    texts = {
        k: supernodes.FeatureText("", tuple(vocabulary[j] for j in rng.integers(0, 2000, 10)))
        for k in keys
    }
    return nodes, links, decoders, texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--links", type=int, default=150_000)
    parser.add_argument("--d-model", type=int, default=2304)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args()
    nodes, links, decoders, texts = synthetic(args.nodes, args.links, args.d_model)
    n_features = len(supernodes.feature_nodes(nodes))
    load_before = os.getloadavg()
    times, cpu, found = [], [], []
    for _ in range(args.repeat):
        started, started_cpu = time.perf_counter(), time.process_time()
        found = supernodes.suggest(nodes, links, decoders=decoders, texts=texts)
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"{len(nodes)} nodes ({n_features} features), {len(links)} links, d_model {args.d_model}")
    print(
        f"suggest: median {statistics.median(times):.3f} s, first {times[0]:.3f} s, "
        f"best {min(times):.3f} s over {args.repeat} runs; {len(found)} groups"
    )
    # CPU time (all threads) says what the work costs when other processes share the cores.
    print(f"CPU time: median {statistics.median(cpu):.3f} s (BLAS threads included)")
    print(f"load average: {load}")
    if args.out:
        result = {
            "benchmark": "supernodes_speed",
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "nodes": len(nodes),
            "features": n_features,
            "links": len(links),
            "groups": len(found),
            "wall_s": {"median": statistics.median(times), "first": times[0], "best": min(times)},
            "cpu_s_median": statistics.median(cpu),
            "load_average_before": list(load_before),
            "load_average_after": list(os.getloadavg()),
        }
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
