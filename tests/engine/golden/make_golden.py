"""Write the golden files of tests/engine/test_golden.py with circuit-tracer 0.5.0.

Run once from the repository root, with circuit-tracer 0.5.0 and nnsight 0.6.1 in a side venv
(see benchmarks/compare_reference.py):

    .venv/bin/python tests/engine/golden/make_golden.py --ctref-python PATH/TO/ctref/bin/python

Each case's model and transcoders are built from the seeds in tests/engine/golden_cases.py; the
file keeps circuit-tracer's graph (the adjacency rows that can be non-zero: features, then
logits), its pruning masks and the versions that made it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from benchmarks.compare_reference import run_circuit_tracer  # noqa: E402
from tests.engine import builders  # noqa: E402
from tests.engine.golden_cases import CASES, EDGE_THRESHOLD, NODE_THRESHOLD, Case  # noqa: E402


def make(python: str, case: Case, folder: Path) -> None:
    model_dir, transcoders = case.write_files(folder)
    out = folder / "ref.safetensors"
    info = run_circuit_tracer(
        python,
        model_dir,
        transcoders,
        case.kind,
        list(case.tokens),
        builders.N_LAYERS,
        out,
        batch_size=case.batch_size,
        max_feature_nodes=case.max_feature_nodes,
        node_threshold=NODE_THRESHOLD,
        edge_threshold=EDGE_THRESHOLD,
        threads=1,
    )
    ref = load_file(str(out))
    adjacency = ref["adjacency"]
    n_features, n_logits = len(ref["selected_features"]), len(ref["logit_tokens"])
    rows = torch.cat(
        [torch.arange(n_features), torch.arange(len(adjacency) - n_logits, len(adjacency))]
    )
    tensors = {
        "adjacency_rows": adjacency[rows].contiguous(),
        "active_features": ref["active_features"].to(torch.int32).contiguous(),
        "selected_features": ref["selected_features"].to(torch.int32).contiguous(),
        "logit_tokens": ref["logit_tokens"].to(torch.int32).contiguous(),
        "node_mask": ref["node_mask"],
        "edge_mask_rows": ref["edge_mask"][rows].contiguous(),
    }
    metadata = {
        "made_by": "circuit-tracer 0.5.0 via tests/engine/golden/make_golden.py",
        "versions": json.dumps(info["versions"]),
        "replacement": repr(info["replacement"]),
        "completeness": repr(info["completeness"]),
    }
    save_file(tensors, str(case.path), metadata=metadata)
    print(f"{case.path.name}: {case.path.stat().st_size} bytes, {n_features} features")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ctref-python", required=True, help="python of the circuit-tracer venv")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for case in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            make(args.ctref_python, case, Path(tmp))


if __name__ == "__main__":
    main()
