"""Dashboards throughput and peak memory: the demo pack on CPU, beside eai-delphi's latent cache.

    nice -n 5 python -m benchmarks.dashboards [--tokens 250000] [--compare-tokens N]
        [--delphi-python /work/sidevenvs/delphi/bin/python] [--no-delphi] [--no-baseline]
        [--json benchmarks/results/....json]
    nice -n 5 python -m benchmarks.dashboards --profile --tokens 1000000

The corpus is synthetic and seeded: the demo pack's templated sentences (its held-out
"dashboards" split), one 64-token context per line of a local .txt file (BOS + 63 tokens; a line
tokenizes back to exactly its context), so every method reads the same contexts. Each
measurement runs in a fresh subprocess with one torch thread, so its peak resident memory
(ru_maxrss) and CPU time are its own:

1. `compute_dashboards` (the streaming engine, the file read through `TokenizedCorpus`, all three
   phases and the JSON of every feature) over `--tokens` and over a quarter of them: tokens/s and
   peak memory; the peak must not grow with the corpus (delphi's, which does, is measured at
   both sizes too, unless `--no-delphi`);
2. over `--compare-tokens` (default a quarter of `--tokens`), side by side: the engine; eai-delphi's `LatentCache.run` (its
   activation caching, the first stage of its pipeline, which keeps every non-zero activation of
   the corpus) run in its own venv (`--delphi-python`) on the same model, transcoders and
   contexts; and a plain materialise-then-sort baseline (every activation of every layer kept
   densely, then per feature a full sort for the top examples and a histogram).

Delphi is fed the transcoders as its `hookpoint_to_sparse_encode` callables: for each layer, a
hook on the input of `model.layers.{i}.post_attention_layernorm` (the residual stream after
attention, the set's `hook_resid_mid`; delphi's `transcode=True` collects a module's input)
and the set's own TopK encoder (the k largest pre-activations of `W_enc x + b_enc`, as the
engine's) read from the same safetensors files. Only delphi's caching is timed, not its
explanation and scoring stages, nor its writing of the cache; the engine's figure includes every
feature's dashboard built, but not its writing (json.dumps and gzip of each layer, about 24 CPU-s
at 1M tokens in the CLI and the job: `on_layer` reads each layer's features, as the writer
does, and drops them).

Tokens/s is given per wall second and per CPU second (the machine may be shared: CPU seconds are
what the work costs). Prints one line per run with the load average; `--json` writes them all.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

PACK = Path(__file__).resolve().parents[1] / "inference" / "packs" / "demo"
CONTEXT = 64
BATCH = 64
DELPHI_PYTHON = "/work/sidevenvs/delphi/bin/python"


def write_corpus(path: Path, n_tokens: int) -> int:
    """Lines of exactly CONTEXT - 1 tokens (BOS is added when read); returns the tokens written."""
    from transformers import AutoTokenizer

    from inference.demo_pack import corpus

    tokenizer = AutoTokenizer.from_pretrained(PACK / "model")
    stream = corpus.sentences(corpus.CorpusConfig(seed=0), "dashboards")
    pending: list[int] = []
    written = 0
    with path.open("w") as out:
        while written < n_tokens:
            sentences = [" " + next(stream).text for _ in range(4096)]
            for ids in tokenizer(sentences, add_special_tokens=False)["input_ids"]:
                pending += ids
            cut = len(pending) // (CONTEXT - 1) * (CONTEXT - 1)
            rows = [pending[i : i + CONTEXT - 1] for i in range(0, cut, CONTEXT - 1)]
            pending = pending[cut:]
            texts = tokenizer.batch_decode(rows)
            again = tokenizer(texts, add_special_tokens=False)["input_ids"]
            for text, ids, back in zip(texts, rows, again, strict=True):
                if back == ids and written < n_tokens:  # the line reads back as this context
                    out.write(text + "\n")
                    written += CONTEXT
    return written


def _pack_and_corpus(corpus_path: Path, n_tokens: int) -> tuple[Any, Any]:
    """The demo pack's model and transcoders, and the corpus cut as every engine run cuts it."""
    from inference.engine import ReplacementModel, TokenizedCorpus

    rm = ReplacementModel.load(PACK / "model", PACK / "transcoders")
    corpus = TokenizedCorpus(
        corpus_path,
        rm.tokenizer,
        special_token=rm.special_token_ids()[0],
        context=CONTEXT,
        max_tokens=n_tokens,
    )
    return rm, corpus


def _read_and_drop(_layer: int, features: Iterable[Any]) -> None:
    """A layer's dashboards are made as they are read: read them all, keep none."""
    for _feature in features:
        pass


def _engine(corpus_path: Path, n_tokens: int) -> dict[str, Any]:
    from inference.engine import compute_dashboards

    rm, corpus = _pack_and_corpus(corpus_path, n_tokens)
    phases: dict[str, float] = {}
    clock = time.monotonic()

    def on_progress(phase: str, _fraction: float) -> None:
        phases.setdefault(phase, time.monotonic() - clock)

    compute_dashboards(
        rm.model, rm.transcoders, corpus, tokenizer=rm.tokenizer, batch_size=BATCH,
        on_progress=on_progress, on_layer=_read_and_drop,
    )  # fmt: skip
    # Seconds at which each phase started: streaming, then the examples' windows, then JSON.
    return {"tokens": corpus.n_tokens, "phase_starts_s": phases}


def _profile(corpus_path: Path, n_tokens: int) -> None:
    """The engine under cProfile: the last quarter of the streaming (where a long corpus spends
    its time; it ends with the picks read out of the state, before the examples phase reports
    its start), then the examples and outputs phases, each printed by own time."""
    import cProfile
    import pstats

    import torch

    from inference.engine import compute_dashboards

    torch.set_num_threads(1)
    rm, corpus = _pack_and_corpus(corpus_path, n_tokens)
    late, end = cProfile.Profile(), cProfile.Profile()
    marks: dict[str, float] = {}
    cpu = time.process_time()

    def on_progress(phase: str, fraction: float) -> None:
        if phase == "activations" and fraction > 0.75 and "late" not in marks:
            marks["late"] = time.process_time() - cpu
            late.enable()
        if phase != "activations" and phase not in marks:
            marks[phase] = time.process_time() - cpu
            if phase == "examples":
                late.disable()
                end.enable()

    compute_dashboards(
        rm.model, rm.transcoders, corpus, tokenizer=rm.tokenizer, batch_size=BATCH,
        on_progress=on_progress, on_layer=_read_and_drop,
    )  # fmt: skip
    end.disable()
    marks["done"] = time.process_time() - cpu
    print("CPU seconds at each phase start:", {k: round(v, 1) for k, v in marks.items()})
    for title, profile in (("last quarter of the streaming", late), ("examples, outputs", end)):
        print(f"=== {title}")
        pstats.Stats(profile).sort_stats("tottime").print_stats(30)


def _materialise(corpus_path: Path, n_tokens: int) -> dict[str, Any]:
    import torch
    from torch import nn

    from inference.engine.freezing import first_tensor_arg

    rm, corpus = _pack_and_corpus(corpus_path, n_tokens)
    rows = list(corpus)
    total = sum(len(r) for r in rows)
    acts = torch.zeros((rm.n_layers, total, rm.transcoders.d_transcoder))
    offset = 0
    inputs: dict[int, torch.Tensor] = {}
    norms = [block.post_attention_layernorm for block in rm.blocks]
    handles = [
        norm.register_forward_pre_hook(
            lambda _m, a, k, i=i: inputs.__setitem__(i, first_tensor_arg(a, k)), with_kwargs=True
        )
        for i, norm in enumerate(norms)
        if isinstance(norm, nn.Module)
    ]
    with torch.no_grad():
        for start in range(0, len(rows), BATCH):
            batch = rows[start : start + BATCH]
            tokens = torch.nn.utils.rnn.pad_sequence(batch, batch_first=True)
            rm.model(input_ids=tokens, use_cache=False)
            for b, row in enumerate(batch):
                for layer, x in inputs.items():
                    encoded = rm.transcoders.encode(layer, x[b, 1 : len(row)])
                    acts[layer, offset + 1 : offset + len(row)] = encoded
                offset += len(row)
        for layer in range(rm.n_layers):
            per_feature = acts[layer].T  # (F, tokens)
            per_feature.sort(dim=1, descending=True)  # top examples = the first k
            for f in range(per_feature.shape[0]):
                fired = per_feature[f][per_feature[f] > 0]
                if len(fired):
                    torch.histc(fired, 16, 0, float(fired.max()))
    for handle in handles:
        handle.remove()
    return {"tokens": total}


# Run by --delphi-python, in delphi's venv: no project imports, only torch, transformers,
# safetensors, yaml and delphi itself.
_DELPHI = r"""
import json, resource, sys, time
from pathlib import Path
import torch, yaml
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer
from importlib.metadata import version
from delphi.latents import LatentCache

pack, corpus_path, n_tokens, batch = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(1)
model = AutoModelForCausalLM.from_pretrained(pack / "model").eval()
tokenizer = AutoTokenizer.from_pretrained(pack / "model")
config = yaml.safe_load((pack / "transcoders" / "config.yaml").read_text())
k = int(config["k"])
rows = []
with corpus_path.open() as lines:
    for line in lines:
        ids = [tokenizer.bos_token_id] + tokenizer(line.rstrip("\n"), add_special_tokens=False)["input_ids"]
        rows.append(ids)
        if len(rows) * len(ids) >= n_tokens:
            break
tokens = torch.tensor(rows)
encoders = {}
for layer, name in enumerate(config["transcoders"]):
    weights = load_file(pack / "transcoders" / name)
    W_enc, b_enc = weights["W_enc"], weights["b_enc"]
    def encode(x, W_enc=W_enc, b_enc=b_enc):
        pre = x @ W_enc.T + b_enc
        _, idx = torch.topk(pre, k=k, dim=-1)
        return pre * torch.zeros_like(pre).scatter_(-1, idx, 1.0)
    encoders[f"model.layers.{layer}.post_attention_layernorm"] = encode
clock, cpu = time.monotonic(), time.process_time()
cache = LatentCache(model, encoders, batch_size=batch, transcode=True)
cache.run(tokens.numel(), tokens)
print(json.dumps({
    "tokens": tokens.numel(), "seconds": time.monotonic() - clock, "cpu_seconds": time.process_time() - cpu,
    "threads": torch.get_num_threads(), "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "delphi_version": version("eai-delphi"), "torch": torch.__version__,
}))
"""


def _child(method: str, corpus_path: Path, n_tokens: int) -> None:
    import torch

    torch.set_num_threads(1)
    clock, cpu = time.monotonic(), time.process_time()
    result = (_engine if method == "engine" else _materialise)(corpus_path, n_tokens)
    result["seconds"] = time.monotonic() - clock
    result["cpu_seconds"] = time.process_time() - cpu
    result["threads"] = torch.get_num_threads()
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def _measure(method: str, corpus_path: Path, n: int, delphi_python: str) -> dict[str, Any]:
    if method == "delphi":
        command = [delphi_python, "-c", _DELPHI, str(PACK), str(corpus_path), str(n), str(BATCH)]
    else:
        command = [sys.executable, "-m", "benchmarks.dashboards", "--child", method]
        command += [str(corpus_path), str(n)]
    load_before = os.getloadavg()[0]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        return {"method": method, "error": done.stderr.strip().splitlines()[-5:]}
    r: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    r["method"] = method
    r["requested_tokens"] = n
    r["load_average"] = [load_before, os.getloadavg()[0]]
    r["tokens_per_s"] = r["tokens"] / r["seconds"]
    r["tokens_per_cpu_s"] = r["tokens"] / r["cpu_seconds"]
    return r


def _line(r: dict[str, Any]) -> str:
    if "error" in r:
        return f"{r['method']:12s} failed: {' | '.join(r['error'])}"
    return (
        f"{r['method']:12s} {r['tokens']:>9,} tokens  {r['tokens_per_s']:>7,.0f} tokens/s  "
        f"{r['tokens_per_cpu_s']:>7,.0f} tokens/CPU-s  peak {r['peak_rss_mib']:>6,.0f} MiB  "
        f"({r['seconds']:.0f} s, {r['threads']} thread, load {r['load_average'][0]:.1f}"
        f"-{r['load_average'][1]:.1f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, default=250_000, help="the larger engine run")
    parser.add_argument(
        "--compare-tokens", type=int, help="the side-by-side runs (default: a quarter of --tokens)"
    )
    parser.add_argument("--delphi-python", default=DELPHI_PYTHON)
    parser.add_argument("--no-baseline", action="store_true", help="skip materialise-then-sort")
    parser.add_argument("--no-delphi", action="store_true", help="skip eai-delphi")
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--profile", action="store_true", help="only profile the engine over --tokens"
    )
    parser.add_argument("--child", nargs=3, metavar=("METHOD", "CORPUS", "TOKENS"))
    args = parser.parse_args()
    if args.child:
        _child(args.child[0], Path(args.child[1]), int(args.child[2]))
        return
    if args.profile:
        with tempfile.TemporaryDirectory() as tmp:
            corpus_path = Path(tmp) / "corpus.txt"
            write_corpus(corpus_path, args.tokens)
            _profile(corpus_path, args.tokens)
        return
    compare = args.compare_tokens or args.tokens // 4
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        corpus_path = Path(tmp) / "corpus.txt"
        largest = max(args.tokens, compare)
        print(f"corpus: {write_corpus(corpus_path, largest):,} tokens", flush=True)
        plan = [("engine", compare)] + ([] if args.no_delphi else [("delphi", compare)])
        if not args.no_baseline:
            plan.append(("materialise", compare))
        growth = [("engine", args.tokens // 4), ("engine", args.tokens)]
        if not args.no_delphi:  # delphi keeps every activation: its growth is a figure too
            growth += [("delphi", args.tokens // 4), ("delphi", args.tokens)]
        plan += [p for p in growth if p not in plan]
        for method, n in plan:
            if method == "delphi" and not Path(args.delphi_python).exists():
                runs.append({"method": method, "error": [f"no {args.delphi_python}"]})
            else:
                runs.append(_measure(method, corpus_path, n, args.delphi_python))
            print(_line(runs[-1]), flush=True)
    by = {(r["method"], r["requested_tokens"]): r for r in runs if "error" not in r}
    engine, delphi = (
        by.get(("engine", compare)),
        by.get(("delphi", compare)),
    )
    summary: dict[str, Any] = {}
    if engine and delphi:
        summary["engine_vs_delphi_tokens_per_s"] = engine["tokens_per_s"] / delphi["tokens_per_s"]
        summary["engine_vs_delphi_tokens_per_cpu_s"] = (
            engine["tokens_per_cpu_s"] / delphi["tokens_per_cpu_s"]
        )
    for method in ("engine", "delphi"):
        small, large = by.get((method, args.tokens // 4)), by.get((method, args.tokens))
        if small and large:
            summary[f"{method}_peak_rss_growth_4x_corpus_mib"] = (
                large["peak_rss_mib"] - small["peak_rss_mib"]
            )
    for key, value in summary.items():
        print(f"{key}: {value:.2f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        machine = {"cpus": os.cpu_count(), "python": platform.python_version()}
        payload = {"args": sys.argv[1:], "machine": machine, "runs": runs, "summary": summary}
        args.json.write_text(json.dumps(payload, indent=1) + "\n")


if __name__ == "__main__":
    main()
