"""`python -m inference dashboards ...`: feature dashboards from a corpus, one file per layer.

Writes ``OUT/layer_{i}.jsonl.gz`` (the files ``manage.py import_features`` reads). A checkpoint
``OUT/checkpoint.safetensors`` is written every ``--checkpoint-every`` batches, so the same command
run again after a crash or Ctrl-C continues where it stopped.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from contract.params import DashboardsParams

CHECKPOINT_NAME = "checkpoint.safetensors"


def _default(name: str) -> Any:
    """The dashboards job's default (contract.params), so the CLI and the site agree."""
    return DashboardsParams.spec(name).default


def _layers(text: str) -> list[int]:
    try:
        layers = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError as exc:
        raise argparse.ArgumentTypeError("--layers must be comma-separated integers") from exc
    if not layers:
        raise argparse.ArgumentTypeError("--layers names no layer")
    return layers


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from exc
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not >= 1")
    return value


def add_parser(commands: Any) -> None:
    p = commands.add_parser("dashboards", help="feature dashboards of a transcoder set")
    p.add_argument("--model", required=True, help="HF model folder or hub id")
    p.add_argument(
        "--transcoders", required=True, help="config.yaml, CLT folder or layer_*.safetensors folder"
    )
    p.add_argument(
        "--corpus",
        required=True,
        help=".txt, .jsonl, their .gz, a folder of them, or a HF dataset id (needs `datasets`)",
    )
    p.add_argument("--text-field", default="text", help="the document field of .jsonl lines")
    p.add_argument("--out", required=True, type=Path, help="folder for layer_{i}.jsonl.gz")
    p.add_argument("--max-tokens", type=_positive, default=None, help="token budget (all tokens)")
    p.add_argument(
        "--top-k", type=_positive, default=_default("top_k"), help="top examples per feature"
    )
    p.add_argument(
        "--context", type=_positive, default=_default("context"), help="tokens per context"
    )
    p.add_argument(
        "--window",
        type=int,
        default=_default("window"),
        help="tokens shown each side of an example",
    )
    p.add_argument(
        "--intervals",
        type=_positive,
        default=_default("n_intervals"),
        help="activation intervals sampled",
    )
    p.add_argument(
        "--per-interval",
        type=_positive,
        default=_default("examples_per_interval"),
        help="samples per interval",
    )
    p.add_argument(
        "--batch-size",
        type=_positive,
        default=_default("batch_size"),
        help="contexts per forward pass",
    )
    p.add_argument("--checkpoint-every", type=_positive, default=50, help="batches")
    p.add_argument(
        "--seed", type=int, default=_default("seed"), help="seed of the interval samples"
    )
    p.add_argument("--layers", type=_layers, default=None, help="e.g. 0,5,11 (default: all)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")


def run(args: argparse.Namespace, progress: Callable[[str, float], None]) -> list[Path]:
    import torch

    from inference.engine import ReplacementModel, TokenizedCorpus, compute_dashboards, write_layer

    if args.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda requested but CUDA is not available")
    if args.window < 0:
        raise ValueError("--window must be >= 0")
    if args.context < 2:
        raise ValueError("--context must be >= 2")
    if args.out.exists() and not args.out.is_dir():
        raise ValueError(f"--out is not a folder: {args.out}")
    rm = ReplacementModel.load(
        args.model, args.transcoders, device=args.device, dtype=getattr(torch, args.dtype)
    )
    if rm.tokenizer is None:
        raise ValueError(f"--model {args.model} has no tokenizer to read the corpus with")
    if args.layers is not None and args.layers[-1] >= rm.n_layers:
        raise ValueError(f"--layers must be in [0, {rm.n_layers})")
    corpus = TokenizedCorpus(
        args.corpus,
        rm.tokenizer,
        special_token=rm.special_token_ids()[0],
        context=args.context,
        max_tokens=args.max_tokens,
        text_field=args.text_field,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def on_layer(layer: int, features: Iterator[dict[str, Any]]) -> None:
        path = args.out / f"layer_{layer}.jsonl.gz"
        write_layer(path, features)
        written.append(path)

    compute_dashboards(
        rm.model,
        rm.transcoders,
        corpus,
        tokenizer=rm.tokenizer,
        layers=args.layers,
        top_k=args.top_k,
        tokens_before=args.window,
        tokens_after=args.window,
        n_intervals=args.intervals,
        examples_per_interval=args.per_interval,
        batch_size=args.batch_size,
        seed=args.seed,
        checkpoint=args.out / CHECKPOINT_NAME,
        checkpoint_every=args.checkpoint_every,
        on_progress=progress,
        on_layer=on_layer,
    )
    return written
