"""Compare our engine with circuit-tracer 0.5.0 (nnsight backend) on the same files.

circuit-tracer lives in a side virtualenv (it pins other transformers/nnsight versions):

    python3 -m venv /tmp/ctref
    /tmp/ctref/bin/pip install torch==2.13.0           # first, pinned: avoids the CUDA build
    /tmp/ctref/bin/pip install circuit-tracer==0.5.0 nnsight==0.6.1
    .venv/bin/python benchmarks/compare_reference.py --ctref-python /tmp/ctref/bin/python

It writes a tiny random Llama model folder (with tokenizer) and random transcoders (per-layer
ReLU, per-layer JumpReLU with skip, and a cross-layer set) to a temporary folder, runs both
engines in fp32 on CPU with all features, and prints the relative adjacency difference and
whether the pruned node and link sets are identical. Not a CI test: CI has no circuit-tracer.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from inference.engine import ReplacementModel, attribute, prune  # noqa: E402
from tests.engine import builders  # noqa: E402

# Run inside the circuit-tracer venv: attribute + prune, tensors out as safetensors.
_REFERENCE_SCRIPT = textwrap.dedent(
    """
    import json, resource, sys, time
    import torch
    from safetensors.torch import save_file
    from circuit_tracer.attribution.attribute import attribute
    from circuit_tracer.graph import prune_graph, compute_graph_scores
    from circuit_tracer.replacement_model.replacement_model_nnsight import NNSightReplacementModel
    from circuit_tracer.transcoder.single_layer_transcoder import TranscoderSet, load_relu_transcoder
    from circuit_tracer.transcoder.cross_layer_transcoder import load_clt

    args = json.loads(sys.argv[1])
    torch.set_num_threads(args["threads"])
    if args["kind"] == "clt":
        tc = load_clt(args["transcoders"], args["in_hook"], args["out_hook"], scan="ref",
                      device=torch.device("cpu"), dtype=torch.float32, lazy_decoder=True)
    else:
        layers = {i: load_relu_transcoder(f"{args['transcoders']}/layer_{i}.safetensors", i,
                                          device=torch.device("cpu"), dtype=torch.float32,
                                          lazy_encoder=False, lazy_decoder=True)
                  for i in range(args["n_layers"])}
        tc = TranscoderSet(layers, args["in_hook"], args["out_hook"], scan="ref")
    t0 = time.perf_counter()
    model = NNSightReplacementModel.from_pretrained_and_transcoders(
        args["model"], tc, device=torch.device("cpu"), dtype=torch.float32)
    t1 = time.perf_counter()
    graph = attribute(torch.tensor(args["tokens"]), model, batch_size=args["batch_size"],
                      max_feature_nodes=args["max_feature_nodes"], verbose=True)
    t2 = time.perf_counter()
    node_mask, edge_mask, cumulative = prune_graph(graph, args["node_threshold"], args["edge_threshold"])
    t3 = time.perf_counter()
    replacement, completeness = compute_graph_scores(graph)
    save_file({
        "adjacency": graph.adjacency_matrix.contiguous(),
        "active_features": graph.active_features.contiguous(),
        "selected_features": graph.selected_features.contiguous(),
        "input_tokens": graph.input_tokens.contiguous(),
        "logit_tokens": graph.logit_token_ids.contiguous(),
        "node_mask": node_mask.to(torch.uint8),
        "edge_mask": edge_mask.to(torch.uint8),
        "cumulative": cumulative.contiguous(),
    }, args["out"])
    print(json.dumps({"load_s": t1 - t0, "attribute_s": t2 - t1, "prune_s": t3 - t2,
                      "replacement": replacement, "completeness": completeness,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
    """
)


def run_circuit_tracer(
    python: str,
    model_dir: Path,
    transcoders: Path,
    kind: str,
    tokens: list[int],
    n_layers: int,
    out: Path,
    *,
    in_hook: str = "mlp.hook_in",
    out_hook: str = "mlp.hook_out",
    batch_size: int = 256,
    max_feature_nodes: int | None = None,
    node_threshold: float = 0.8,
    edge_threshold: float = 0.98,
    threads: int = 2,
) -> dict:
    """Run circuit-tracer in its venv; returns its timings and scores, tensors in `out`."""
    args = {
        "model": str(model_dir),
        "transcoders": str(transcoders),
        "kind": kind,
        "tokens": tokens,
        "n_layers": n_layers,
        "in_hook": in_hook,
        "out_hook": out_hook,
        "batch_size": batch_size,
        "max_feature_nodes": max_feature_nodes,
        "node_threshold": node_threshold,
        "edge_threshold": edge_threshold,
        "threads": threads,
        "out": str(out),
    }
    done = subprocess.run(
        [python, "-c", _REFERENCE_SCRIPT, json.dumps(args)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"circuit-tracer failed:\n{done.stderr[-4000:]}")
    result = dict(json.loads(done.stdout.strip().splitlines()[-1]))
    # With verbose=True circuit-tracer logs "<Phase> completed in 1.23s" per phase to stderr.
    result["phases"] = {
        m.group(1): float(m.group(2))
        for m in re.finditer(r"^(.+?) completed in ([\d.]+)s", done.stderr, re.MULTILINE)
    }
    return result


def _edge_set(targets: torch.Tensor, sources: torch.Tensor) -> set[tuple[int, int]]:
    return set(zip(targets.tolist(), sources.tolist(), strict=True))


def compare(python: str, kind: str, workdir: Path, max_feature_nodes: int | None) -> None:
    model_dir = builders.save_model("llama", workdir / "model")
    if kind == "clt":
        builders.save_clt(workdir / kind, input_hook="mlp.hook_in", output_hook="mlp.hook_out")
        transcoders = workdir / kind
    else:
        options = {"jumprelu": True, "skip": True} if kind == "plt-jumprelu-skip" else {}
        builders.save_plt(workdir / kind, **options)  # type: ignore[arg-type]
        transcoders = workdir / kind
    tokens = [builders.BOS, 5, 9, 7, 12, 30, 8, 17, 22]
    rm = ReplacementModel.load(model_dir, transcoders / "config.yaml")
    ours = attribute(tokens, rm, batch_size=64, max_feature_nodes=max_feature_nodes)
    pruned = prune(ours)
    ref_out = workdir / f"{kind}-ref.safetensors"
    info = run_circuit_tracer(
        python,
        model_dir,
        transcoders,
        "clt" if kind == "clt" else "plt",
        tokens,
        builders.N_LAYERS,
        ref_out,
        batch_size=64,
        max_feature_nodes=max_feature_nodes,
    )
    ref = load_file(str(ref_out))
    same_nodes = torch.equal(ref["active_features"], ours.active_features) and torch.equal(
        ref["selected_features"], ours.selected_features
    )
    diff = (ref["adjacency"] - ours.adjacency).abs().max().item()
    scale = ref["adjacency"].abs().max().item()
    ref_edges = _edge_set(*ref["edge_mask"].bool().nonzero(as_tuple=True))
    ref_nodes = set(ref["node_mask"].bool().nonzero().squeeze(1).tolist())
    our_nodes = set(pruned.node_mask.nonzero().squeeze(1).tolist())
    our_edges = _edge_set(pruned.edge_targets, pruned.edge_sources)
    # circuit-tracer's JSON keeps only edges between kept nodes; compare those.
    ref_edges = {(t, s) for t, s in ref_edges if t in ref_nodes and s in ref_nodes}
    print(
        f"{kind:20s} max_feature_nodes={max_feature_nodes!s:5s} features={ours.n_features:4d} "
        f"same node order={same_nodes} max|dA|/max|A|={diff / scale:.2e} "
        f"nodes equal={ref_nodes == our_nodes} ({len(our_nodes)}) "
        f"edges equal={ref_edges == our_edges} ({len(our_edges)}) "
        f"replacement {pruned.replacement_score:.6f} vs {info['replacement']:.6f} "
        f"completeness {pruned.completeness_score:.6f} vs {info['completeness']:.6f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ctref-python", required=True, help="python of the circuit-tracer venv")
    args = parser.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        for kind, max_nodes in (
            ("plt-relu", None),
            ("plt-jumprelu-skip", None),
            ("clt", None),
            ("plt-relu", 40),
        ):
            compare(args.ctref_python, kind, Path(tmp) / f"{kind}-{max_nodes}", max_nodes)


if __name__ == "__main__":
    main()
