"""Dashboards throughput and peak memory: the demo pack on CPU.

    nice -n 5 python -m benchmarks.dashboards [--tokens 1000000] [--baseline-tokens 65536]

Each measurement runs in a fresh subprocess, so its peak resident memory (ru_maxrss) is its own:
1. `compute_dashboards` (the streaming engine) over `--tokens` corpus tokens and over a quarter
   of them: tokens/s and peak memory; the peak should not grow with the corpus;
2. the plain baseline, materialise-then-sort: every activation of every layer kept in memory
   (dense float32, as the demo pack's first implementation did), then per feature a full sort for
   the top examples and a histogram; over `--baseline-tokens` (its memory is 4 bytes x tokens x
   features x layers, so a million tokens would need 32 GB here).
The corpus is the demo pack's own held-out split (templated sentences, six per document), written
to a temporary .txt and read through `TokenizedCorpus` (64-token contexts). Prints one line per
run, and the load average beside it.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import cast

PACK = Path(__file__).resolve().parents[1] / "inference" / "packs" / "demo"


def _write_corpus(path: Path, n_tokens: int) -> None:
    from transformers import AutoTokenizer

    from inference.demo_pack import corpus

    tokenizer = AutoTokenizer.from_pretrained(PACK / "model")
    stream = corpus.sentences(corpus.CorpusConfig(seed=0), "dashboards")
    written = 0
    with path.open("w") as out:
        while written < n_tokens:
            document = " ".join(s.text for s in itertools.islice(stream, 6))
            out.write(document + "\n")
            written += len(tokenizer(document, add_special_tokens=False)["input_ids"]) + 1


def _stream(corpus_path: Path, n_tokens: int) -> dict[str, float]:
    import torch

    from inference.engine import ReplacementModel, TokenizedCorpus, compute_dashboards

    rm = ReplacementModel.load(PACK / "model", PACK / "transcoders")
    corpus = TokenizedCorpus(
        corpus_path, rm.tokenizer, special_token=rm.special_token_ids()[0], max_tokens=n_tokens
    )
    clock = time.monotonic()
    compute_dashboards(
        rm.model, rm.transcoders, corpus, tokenizer=rm.tokenizer, batch_size=64,
        on_layer=lambda _layer, _features: None,
    )  # fmt: skip
    seconds = time.monotonic() - clock
    return {"tokens": corpus.n_tokens, "seconds": seconds, "threads": torch.get_num_threads()}


def _materialise(corpus_path: Path, n_tokens: int) -> dict[str, float]:
    import torch
    from torch import nn

    from inference.engine import ReplacementModel, TokenizedCorpus
    from inference.engine.freezing import first_tensor_arg

    rm = ReplacementModel.load(PACK / "model", PACK / "transcoders")
    corpus = TokenizedCorpus(
        corpus_path, rm.tokenizer, special_token=rm.special_token_ids()[0], max_tokens=n_tokens
    )
    clock = time.monotonic()
    rows = list(corpus)
    total = sum(len(r) for r in rows)
    acts = torch.zeros((rm.n_layers, total, rm.transcoders.d_transcoder))
    offset = 0
    inputs: dict[int, torch.Tensor] = {}
    norms = [cast(nn.Module, block.post_attention_layernorm) for block in rm.blocks]
    handles = [
        norm.register_forward_pre_hook(
            lambda _m, a, k, i=i: inputs.__setitem__(i, first_tensor_arg(a, k)), with_kwargs=True
        )
        for i, norm in enumerate(norms)
    ]
    with torch.no_grad():
        for start in range(0, len(rows), 64):  # batches of 64 contexts, as the engine's run
            batch = rows[start : start + 64]
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
    seconds = time.monotonic() - clock
    return {"tokens": total, "seconds": seconds, "threads": torch.get_num_threads()}


def _child(method: str, corpus_path: Path, n_tokens: int) -> None:
    result = (_stream if method == "stream" else _materialise)(corpus_path, n_tokens)
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, default=1_000_000)
    parser.add_argument("--baseline-tokens", type=int, default=65_536)
    parser.add_argument("--child", nargs=3, metavar=("METHOD", "CORPUS", "TOKENS"))
    args = parser.parse_args()
    if args.child:
        _child(args.child[0], Path(args.child[1]), int(args.child[2]))
        return
    with tempfile.TemporaryDirectory() as tmp:
        corpus_path = Path(tmp) / "corpus.txt"
        _write_corpus(corpus_path, args.tokens)
        runs = [
            ("stream", args.tokens // 4),
            ("stream", args.tokens),
            ("materialise", args.baseline_tokens),
            ("stream", args.baseline_tokens),
        ]
        for method, n in runs:
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks.dashboards", "--child", method, str(corpus_path), str(n)],
                check=True, capture_output=True, text=True,
            ).stdout  # fmt: skip
            r = json.loads(out.strip().splitlines()[-1])
            print(
                f"{method:12s} {r['tokens']:>9,} tokens  {r['tokens'] / r['seconds']:>8,.0f} tokens/s  "
                f"peak {r['peak_rss_mib']:>7,.0f} MiB  ({r['seconds']:.0f} s, {r['threads']} threads, "
                f"load {os.getloadavg()[0]:.1f})",
                flush=True,
            )


if __name__ == "__main__":
    main()
