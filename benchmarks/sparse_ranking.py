"""The sparse influence ranking against the dense one: time, column passes, agreement (CPU or GPU).

    .venv/bin/python benchmarks/sparse_ranking.py --preset gemma3-270m --tokens 64 \\
        --max-feature-nodes 1024 --entries 64,512,4096 [--repeats 3] [--json out.json]

One model and transcoder set (benchmarks/attribution.py's `build`: a seeded random preset, or
the real Gemma-3-270M with seeded transcoders) is built once; then, ``--repeats`` rounds of the
dense ranking and the sparse ranking at each ``--entries`` (``ranking_entries``: the magnitudes
each feature row keeps), in that order each round, on the same prompt. For each run: the wall
time of `attribute`, and for the sparse runs the column passes the ranking made (counted by
wrapping `ColumnPass.columns` in this process: the engine does not report them) and how its
graph agrees with the dense run's (the same selected features, and the largest adjacency
difference relative to the largest entry). The figure to read is the median time of each
setting over the dense median, and the passes over ``max_feature_nodes``: the visited
features' columns are needed by the graph, so passes beyond them are the near-misses the
bounds could not rule out.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    import torch

    from benchmarks.attribution import DTYPES, PRESETS, REAL, build, model_folder, prompt_tokens
    from inference.engine import ReplacementModel, attribute
    from inference.engine.columns import ColumnPass

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", choices=tuple(PRESETS), default="small")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--dtype", choices=tuple(DTYPES), default="float32")
    parser.add_argument("--layers", type=int, default=None, help="default: the preset's")
    parser.add_argument("--d-model", type=int, default=None, help="default: the preset's")
    parser.add_argument("--features", type=int, default=None, help="default: the preset's")
    parser.add_argument("--vocab", type=int, default=None, help="default: the preset's")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--l0", type=int, default=64, help="active features per layer and token")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-feature-nodes", type=int, default=1024)
    parser.add_argument("--entries", default="64,512,4096", help="ranking_entries values")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    preset = PRESETS[args.preset]
    for name in ("d_model", "layers", "features", "vocab"):
        if getattr(args, name) is None:
            setattr(args, name, getattr(preset, name))
    if args.preset in REAL and not (REAL[args.preset] / "config.json").exists():
        parser.error(f"--preset {args.preset}: no checkpoint; run make gemma3-270m")
    try:
        entries = [int(e) for e in args.entries.split(",")]
    except ValueError:
        parser.error(f"--entries: not a list of integers: {args.entries!r}")
    if min(entries) < 1:
        parser.error("--entries: each value must be >= 1")

    passes = [0]
    columns = ColumnPass.columns

    def counted(self: ColumnPass, idx: torch.Tensor, targets: Any) -> torch.Tensor:
        passes[0] += len(idx)
        return columns(self, idx, targets)

    ColumnPass.columns = counted  # type: ignore[method-assign]
    settings: list[int | None] = [None, *entries]
    times: dict[str, list[float]] = {str(s): [] for s in settings}
    result: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        tokens = prompt_tokens(args)
        build(folder, args, tokens)
        rm = ReplacementModel.load(
            model_folder(folder, args), folder / "transcoders", device=args.device,
            dtype=DTYPES[args.dtype],
        )  # fmt: skip

        def run(entries_: int | None) -> Any:
            passes[0] = 0
            if args.device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            graph = attribute(
                tokens, rm, batch_size=args.batch_size, max_feature_nodes=args.max_feature_nodes,
                ranking_entries=entries_,
            )  # fmt: skip
            if args.device == "cuda":
                torch.cuda.synchronize()
            times[str(entries_)].append(time.perf_counter() - start)
            return graph

        dense = run(None)  # the first dense run also warms the caches; it is not timed twice
        times["None"].clear()
        n_active = len(dense.active_features)
        print(
            f"{args.preset} {args.device} {args.dtype}: {len(tokens)} tokens, {n_active} active "
            f"features, max_feature_nodes {args.max_feature_nodes}, batch {args.batch_size}"
        )
        scale = float(dense.target_rows.abs().max())
        for _ in range(args.repeats):
            for setting in settings:
                graph = run(setting)
                if setting is None:
                    continue
                same = torch.equal(graph.selected_features, dense.selected_features)
                diff = float((graph.target_rows - dense.target_rows).abs().max())
                result[str(setting)] = {
                    "column_passes": passes[0],
                    "same_selection": same,
                    "max_adjacency_diff_relative": diff / scale,
                }
    dense_median = statistics.median(times["None"])
    print(f"{'ranking':>10} {'median s':>9} {'/ dense':>8} {'passes':>8} {'/ nodes':>8} agree")
    print(f"{'dense':>10} {dense_median:9.2f} {1:8.2f}")
    for setting in entries:
        row = result[str(setting)]
        med = statistics.median(times[str(setting)])
        row |= {
            "median_s": med,
            "runs_s": times[str(setting)],
            "ratio_to_dense": med / dense_median,
        }
        agree = "same" if row["same_selection"] else "DIFFERENT"
        print(
            f"{setting:>10} {med:9.2f} {med / dense_median:8.2f} {row['column_passes']:>8} "
            f"{row['column_passes'] / args.max_feature_nodes:8.2f} {agree} selection, adjacency "
            f"{row['max_adjacency_diff_relative']:.1e}"
        )
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(f"load average {' '.join(load)}")
    if args.json is not None:
        figures = {
            "settings": vars(args) | {"json": str(args.json)},
            "active_features": n_active,
            "dense": {"median_s": dense_median, "runs_s": times["None"]},
            "sparse": result,
            "loadavg": load,
        }
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
