"""Compare our engine with circuit-tracer 0.5.0 (nnsight backend) on the same files.

circuit-tracer lives in a side virtualenv outside the project (it pins other transformers and
nnsight versions); CTREF below is any folder you choose for it:

    python3 -m venv CTREF
    CTREF/bin/pip install torch==2.13.0           # first, pinned: avoids the CUDA build
    CTREF/bin/pip install circuit-tracer==0.5.0 nnsight==0.6.1
    .venv/bin/python benchmarks/compare_reference.py --ctref-python CTREF/bin/python

It writes a tiny random Llama model folder (with tokenizer) and random transcoders (per-layer
ReLU, per-layer JumpReLU with skip, and a cross-layer set) to a temporary folder, runs both
engines in fp32 on CPU with all features, and prints the relative adjacency difference and
whether the pruned node and link sets are identical. Not a CI test: CI has no circuit-tracer.

`run_circuit_tracer` is also what benchmarks/attribution.py uses for its side-by-side runs (on
CUDA too: ``device``/``dtype``, and ``env`` to point the subprocess at wheels, e.g. PYTHONPATH).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from inference.engine import Graph, PruneResult, ReplacementModel, attribute, prune  # noqa: E402
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
    device, dtype = torch.device(args["device"]), getattr(torch, args["dtype"])
    cuda = device.type == "cuda"
    gpu_peak_mib, gpu_reserved_mib = {}, {}

    def clock():
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    def gpu_peak(phase):
        if cuda:
            gpu_peak_mib[phase] = torch.cuda.max_memory_allocated() / 2**20
            gpu_reserved_mib[phase] = torch.cuda.max_memory_reserved() / 2**20
            torch.cuda.reset_peak_memory_stats()

    t0 = clock()
    if args["kind"] == "clt":
        tc = load_clt(args["transcoders"], args["in_hook"], args["out_hook"], scan="ref",
                      device=device, dtype=dtype, lazy_decoder=True)
    else:
        layers = {i: load_relu_transcoder(f"{args['transcoders']}/layer_{i}.safetensors", i,
                                          device=device, dtype=dtype,
                                          lazy_encoder=False, lazy_decoder=True)
                  for i in range(args["n_layers"])}
        tc = TranscoderSet(layers, args["in_hook"], args["out_hook"], scan="ref")
    model = NNSightReplacementModel.from_pretrained_and_transcoders(
        args["model"], tc, device=device, dtype=dtype)
    t1 = clock()
    gpu_peak("load")
    graph = attribute(torch.tensor(args["tokens"]), model, batch_size=args["batch_size"],
                      max_feature_nodes=args["max_feature_nodes"], verbose=True)
    t2 = clock()
    gpu_peak("attribute")
    node_mask, edge_mask, cumulative = prune_graph(graph, args["node_threshold"], args["edge_threshold"])
    t3 = clock()
    gpu_peak("prune")
    replacement, completeness = compute_graph_scores(graph)
    save_file({
        "adjacency": graph.adjacency_matrix.cpu().contiguous(),
        "active_features": graph.active_features.cpu().contiguous(),
        "selected_features": graph.selected_features.cpu().contiguous(),
        "input_tokens": graph.input_tokens.cpu().contiguous(),
        "logit_tokens": graph.logit_token_ids.cpu().contiguous(),
        "node_mask": node_mask.cpu().to(torch.uint8),
        "edge_mask": edge_mask.cpu().to(torch.uint8),
        "cumulative": cumulative.cpu().contiguous(),
    }, args["out"])
    print(json.dumps({"load_s": t1 - t0, "attribute_s": t2 - t1, "prune_s": t3 - t2,
                      "replacement": replacement, "completeness": completeness,
                      "device": str(device), "dtype": args["dtype"],
                      "versions": {"torch": torch.__version__,
                                   "transformers": __import__("transformers").__version__,
                                   "nnsight": __import__("nnsight").__version__},
                      "gpu_peak_mib": gpu_peak_mib, "gpu_reserved_mib": gpu_reserved_mib,
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
    device: str = "cpu",
    dtype: str = "float32",
    env: dict[str, str] | None = None,
    timeout: float | None = None,
) -> dict:
    """Run circuit-tracer in its venv; returns its timings and scores, tensors in `out`.

    ``device`` is "cpu" or "cuda", ``dtype`` "float32" or "bfloat16" (model and transcoders).
    ``env`` adds variables to the subprocess's environment (e.g. PYTHONPATH of a wheel folder).
    Load and attribute times are read after a CUDA synchronize; on CUDA the result also has
    ``gpu_peak_mib`` per phase (``torch.cuda.max_memory_allocated``, reset between phases).
    """
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
        "device": device,
        "dtype": dtype,
        "out": str(out),
    }
    # Run from the output's folder, not this repository: `-c` puts the working directory first
    # on sys.path, and the repository's top-level packages must not shadow circuit-tracer's.
    done = subprocess.run(
        [python, "-c", _REFERENCE_SCRIPT, json.dumps(args)],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(out).parent,
        env={**os.environ, **(env or {})},
        timeout=timeout,
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


def _node_keys(
    active: torch.Tensor, selected: torch.Tensor, n_layers: int, n_pos: int, n_logits: int
) -> list[tuple[Any, ...]]:
    """Each node's identity, in the graph's node order: features by (layer, position, index),
    then errors, tokens and logits by place. Two engines' graphs line up by these keys even when
    one has a feature the other does not (a pre-activation sitting on a threshold, flipped by
    rounding)."""
    keys: list[tuple[Any, ...]] = [("f", *active[i].tolist()) for i in selected.tolist()]
    keys += [("e", layer, pos) for layer in range(n_layers) for pos in range(n_pos)]
    keys += [("t", pos) for pos in range(n_pos)]
    keys += [("l", k) for k in range(n_logits)]
    return keys


def embedding_scale(model: torch.nn.Module, tokens: list[int]) -> float:
    """What the model's embedding module multiplies its weight rows by (1.0 for most models;
    sqrt(d_model) for Gemma-3, which scales inside the module)."""
    embed = model.get_input_embeddings()  # type: ignore[operator]
    assert isinstance(embed, torch.nn.Embedding)
    ids = torch.tensor(tokens[:8])
    with torch.no_grad():
        out = embed(ids[None].to(embed.weight.device))[0].float()
    raw = embed.weight[ids.to(embed.weight.device)].float()
    return float(out.norm() / raw.norm())


def in_circuit_tracers_token_convention(graph: Graph, scale: float) -> Graph:
    """Our graph with its token columns divided by ``scale``: where the embedding module scales
    its rows itself, circuit-tracer multiplies the gradient at its output by the unscaled row, so
    its token edges are 1/scale of ours (docs/engine.md, "Gemma-3 token nodes"). Compare, and
    prune, in that convention to check equality with it."""
    rows = graph.target_rows.clone()
    start = graph.n_nodes - graph.n_logits - graph.n_pos
    rows[:, start : start + graph.n_pos] /= scale
    return Graph(**{**vars(graph), "target_rows": rows})


def agreement(ref: dict[str, torch.Tensor], ours: Graph, pruned: PruneResult) -> dict[str, Any]:
    """How our graph and pruning compare with circuit-tracer's tensors (from run_circuit_tracer),
    node by node identity: the adjacency over the nodes both have, and the pruned node and edge
    sets."""
    n_pos, n_logits = len(ours.input_tokens), len(ours.logit_tokens)
    our_keys = _node_keys(
        ours.active_features, ours.selected_features, ours.n_layers, n_pos, n_logits
    )
    ref_keys = _node_keys(
        ref["active_features"], ref["selected_features"], ours.n_layers, n_pos, n_logits
    )
    result: dict[str, Any] = {"same_node_order": our_keys == ref_keys}
    ref_index = {key: i for i, key in enumerate(ref_keys)}
    common = [(i, ref_index[key]) for i, key in enumerate(our_keys) if key in ref_index]
    mine = torch.tensor([i for i, _ in common])
    theirs = torch.tensor([j for _, j in common])
    ref_block = ref["adjacency"][theirs][:, theirs]
    diff = (ref_block - ours.adjacency[mine][:, mine]).abs().max().item()
    result["max_abs_diff_rel"] = diff / max(ref_block.abs().max().item(), 1e-30)
    result["nodes_only_ours"] = [k for k in our_keys if k not in ref_index][:20]
    result["nodes_only_ref"] = [k for k in ref_keys if k not in set(our_keys)][:20]
    ref_nodes = {ref_keys[i] for i in ref["node_mask"].bool().nonzero().squeeze(1).tolist()}
    our_nodes = {our_keys[i] for i in pruned.node_mask.nonzero().squeeze(1).tolist()}
    ref_edges = {
        (ref_keys[t], ref_keys[s])
        for t, s in _edge_set(*ref["edge_mask"].bool().nonzero(as_tuple=True))
    }
    our_edges = {
        (our_keys[t], our_keys[s]) for t, s in _edge_set(pruned.edge_targets, pruned.edge_sources)
    }
    # circuit-tracer's JSON keeps only edges between kept nodes; compare those.
    ref_edges = {(t, s) for t, s in ref_edges if t in ref_nodes and s in ref_nodes}
    result.update(
        nodes_equal=ref_nodes == our_nodes,
        n_nodes=len(our_nodes),
        n_nodes_ref=len(ref_nodes),
        nodes_jaccard=len(ref_nodes & our_nodes) / max(len(ref_nodes | our_nodes), 1),
        edges_equal=ref_edges == our_edges,
        n_edges=len(our_edges),
        n_edges_ref=len(ref_edges),
        edges_jaccard=len(ref_edges & our_edges) / max(len(ref_edges | our_edges), 1),
    )
    return result


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
    same = agreement(load_file(str(ref_out)), ours, pruned)
    print(
        f"{kind:20s} max_feature_nodes={max_feature_nodes!s:5s} features={ours.n_features:4d} "
        f"same node order={same['same_node_order']} "
        f"max|dA|/max|A|={same['max_abs_diff_rel']:.2e} "
        f"nodes equal={same['nodes_equal']} ({same['n_nodes']}) "
        f"edges equal={same['edges_equal']} ({same['n_edges']}) "
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
