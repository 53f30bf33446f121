"""The memory planner against measured peaks: estimate vs process peak over a grid (CPU).

    .venv/bin/python benchmarks/memory_plan.py [--json benchmarks/results/cpu-2026-12-01-memory-plan.json]

One seeded random Llama-shaped model and transcoders (benchmarks/attribution.py's `build`,
encoder thresholds calibrated so each layer and token has about ``--l0`` active features) are
built once for the longest prompt; every grid point (prompt length, ``max_feature_nodes``, batch
size, layout: decoder blocks held or built per batch) then runs in its own process on a prefix
of that prompt: load the model, `measure` and `estimate` (inference/engine/memory_plan.py), read
every decoder row once and attribute the first ``WARM_TOKENS`` tokens with the same settings (so
the memory-mapped decoder pages, and the pages of torch's own code that attribution runs, are
resident before the baseline, as they are in a worker after its first job: without this, ~3.3
MiB of library code faulted in during the first run counted as the run's memory), return freed
heap to the system (``malloc_trim``), reset the kernel's peak-RSS mark (``/proc/self/clear_refs``
5), read the baseline RSS, attribute, and read the peak (``VmHWM``). The measured figure is that
peak minus the baseline: the whole process's resident memory, torch's CPU allocations included
(tracemalloc would not see them). The same point's peak varies from run to run by up to about
a third at the smallest points (glibc's heap; docs/engine.md), so each point runs ``--repeats``
times and the median is compared. Memory, not time: the shared bench lock is enough.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MIB = 2**20
WARM_TOKENS = 8  # the warm-up attribution's prompt: short, every code path of a longer one


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def _layout(name: str) -> Any:
    """The `Layout` named ``held``, ``per-batch``, or ``sparse-M`` (blocks held, the sparse
    ranking keeping M entries a row)."""
    from inference.engine.memory_plan import Layout

    if name.startswith("sparse-"):
        return Layout(ranking_entries=int(name.removeprefix("sparse-")))
    return Layout(hold_decoder_blocks=name == "held")


def child(
    folder: Path, n_tokens: int, nodes: int | None, batch: int, layout_name: str
) -> dict[str, Any]:
    """One grid point in this (fresh) process; returns its figures."""
    import torch

    from benchmarks.attribution import prompt_tokens
    from inference.engine import ReplacementModel, attribute
    from inference.engine.memory_plan import Shapes, estimate, measure

    torch.set_num_threads(1)
    args = json.loads((folder / "args.json").read_text())
    tokens = torch.tensor(prompt_tokens(argparse.Namespace(**args))[:n_tokens])
    rm = ReplacementModel.load(folder / "model", folder / "transcoders")
    active = measure(rm, tokens)
    layout = _layout(layout_name)
    options = {
        "batch_size": batch,
        "max_feature_nodes": nodes,
        "hold_decoder_blocks": layout.hold_decoder_blocks,
        "ranking_entries": layout.ranking_entries,
    }
    plan = estimate(
        Shapes.of(rm), active, batch_size=batch, max_feature_nodes=nodes, n_logits=10,
        layout=layout,
    )  # fmt: skip
    for dec in rm.transcoders.decoders:
        dec.rows(torch.arange(dec.d_transcoder), torch.device("cpu"), torch.float32)
    attribute(tokens[:WARM_TOKENS], rm, **options)
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")
    baseline = _status_kib("VmRSS") * 1024
    attribute(tokens, rm, **options)
    peak = _status_kib("VmHWM") * 1024
    measured = peak - baseline
    return {
        "tokens": n_tokens,
        "max_feature_nodes": nodes,
        "batch_size": batch,
        "layout": layout_name,
        "active_features": active.total,
        "estimate_mib": plan.peak / MIB,
        "measured_mib": measured / MIB,
        "ratio": plan.peak / measured,
        "terms_mib": {k: v / MIB for k, v in plan.terms.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--features", type=int, default=4096)
    parser.add_argument("--l0", type=int, default=32)
    parser.add_argument("--tokens", default="32,64,128", help="prompt lengths")
    parser.add_argument(
        "--nodes", default="all,256", help="max_feature_nodes values (all = every feature)"
    )
    parser.add_argument("--batch-sizes", default="16,64")
    parser.add_argument(
        "--layouts",
        default="held,per-batch",
        help="decoder blocks held, built per batch, or sparse-M (held, the sparse ranking "
        "keeping M entries a row: only where nodes selects)",
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs per point; the median peak is reported"
    )
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--child", nargs=5, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        folder, n, nodes, batch, layout = args.child
        nodes_n = None if nodes == "all" else int(nodes)
        figures = child(Path(folder), int(n), nodes_n, int(batch), layout)
        print(json.dumps(figures))
        return

    import torch

    from benchmarks.attribution import build, prompt_tokens

    lengths = [int(t) for t in args.tokens.split(",")]
    build_args = argparse.Namespace(
        preset="small", device="cpu", dtype="float32", seed=0, vocab=4096,
        d_model=args.d_model, layers=args.layers, features=args.features, l0=args.l0,
        tokens=max(lengths),
    )  # fmt: skip
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        build(folder, build_args, prompt_tokens(build_args))
        (folder / "args.json").write_text(json.dumps(vars(build_args)))
        del torch
        print(f"{'tokens':>6} {'nodes':>6} {'batch':>5} {'layout':>9} {'active':>7} "
              f"{'estimate':>9} {'measured':>9} {'ratio':>6}")  # fmt: skip
        grid = [
            (n, nodes, batch, layout)
            for n in lengths
            for nodes in args.nodes.split(",")
            for batch in args.batch_sizes.split(",")
            for layout in args.layouts.split(",")
            if not (layout.startswith("sparse-") and nodes == "all")
        ]
        for n, nodes, batch, layout in grid:
            runs = []
            for _ in range(args.repeats):
                out = subprocess.run(
                    [sys.executable, __file__, "--child", str(folder), str(n), nodes, batch,
                     layout],
                    check=True, capture_output=True, text=True, env={**os.environ},
                )  # fmt: skip
                runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
            # the same point's peak varies from run to run (malloc's heap; docs/engine.md)
            row = sorted(runs, key=lambda r: r["measured_mib"])[len(runs) // 2]
            row["measured_runs_mib"] = [r["measured_mib"] for r in runs]
            results.append(row)
            print(
                f"{n:>6} {nodes:>6} {batch:>5} {layout:>9} {row['active_features']:>7} "
                f"{row['estimate_mib']:>8.1f}M {row['measured_mib']:>8.1f}M "
                f"{row['ratio']:>6.3f}",
                flush=True,
            )
    worst = max(abs(r["ratio"] - 1) for r in results)
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(f"worst |estimate / measured - 1| = {worst:.3f}; load average {' '.join(load)}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "model": {
                        k: getattr(build_args, k)
                        for k in ("d_model", "layers", "features", "l0", "vocab")
                    },
                    "measured": "process VmHWM after clear_refs minus VmRSS before attribute()",
                    "loadavg": load,
                    "worst_relative_error": worst,
                    "points": results,
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
