"""Write the golden files of tests/engine/test_golden.py with circuit-tracer 0.5.0.

Run once from the repository root, with circuit-tracer 0.5.0 and nnsight 0.6.1 in a side venv
(see benchmarks/compare_reference.py):

    .venv/bin/python tests/engine/golden/make_golden.py --ctref-python PATH/TO/ctref/bin/python

Each case's model and transcoders are built from the seeds in tests/engine/golden_cases.py;
``--gemma3`` also writes the real-checkpoint case of tests/engine/gemma3_case.py (the folder
``make gemma3-270m`` caches must exist). A file keeps circuit-tracer's graph (the adjacency rows that can be non-zero: features, then
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
    save(out, info, case.path)


def make_gemma3(python: str, folder: Path) -> None:
    from inference.engine import ReplacementModel
    from tests.engine import gemma3_case

    transcoders = gemma3_case.write_transcoders(folder / "transcoders")
    rm = ReplacementModel.load(gemma3_case.CHECKPOINT, transcoders / "config.yaml")
    tokens = rm.tokenize(gemma3_case.PROMPT).tolist()
    del rm
    out = folder / "ref.safetensors"
    info = run_circuit_tracer(
        python,
        gemma3_case.CHECKPOINT,
        transcoders,
        "plt",
        tokens,
        gemma3_case.N_LAYERS,
        out,
        in_hook=gemma3_case.INPUT_HOOK,
        out_hook=gemma3_case.OUTPUT_HOOK,
        batch_size=gemma3_case.BATCH_SIZE,
        max_feature_nodes=gemma3_case.MAX_FEATURE_NODES,
        node_threshold=NODE_THRESHOLD,
        edge_threshold=EDGE_THRESHOLD,
        threads=2,
        env={"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
    )
    save(out, info, gemma3_case.GOLDEN_FILE)


def save(out: Path, info: dict, path: Path) -> None:
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
        "input_tokens": ref["input_tokens"].to(torch.int32).contiguous(),
    }
    metadata = {
        "made_by": "circuit-tracer 0.5.0 via tests/engine/golden/make_golden.py",
        "versions": json.dumps(info["versions"]),
        "replacement": repr(info["replacement"]),
        "completeness": repr(info["completeness"]),
    }
    save_file(tensors, str(path), metadata=metadata)
    print(f"{path.name}: {path.stat().st_size} bytes, {n_features} features")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ctref-python", required=True, help="python of the circuit-tracer venv")
    parser.add_argument("--gemma3", action="store_true", help="also the Gemma-3-270M case")
    parser.add_argument("--only-gemma3", action="store_true", help="only the Gemma-3-270M case")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.gemma3 or args.only_gemma3:
        with tempfile.TemporaryDirectory() as tmp:
            make_gemma3(args.ctref_python, Path(tmp))
        if args.only_gemma3:
            return
    for case in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            make(args.ctref_python, case, Path(tmp))


if __name__ == "__main__":
    main()
