"""`python -m inference attribute ...`: one attribution graph from the command line.

Bad input (paths, architecture, transcoder shapes, prompt) prints one line and exits with 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import cast

EXIT_BAD_INPUT = 2


class _Progress:
    """A tqdm bar per phase on a terminal; silent otherwise."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar = None
        self.phase = ""

    def __call__(self, phase: str, fraction: float) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        if phase != self.phase:
            self.close()
            self.phase = phase
            self.bar = tqdm(total=100, desc=phase, unit="%", leave=False)
        assert self.bar is not None
        self.bar.update(round(fraction * 100) - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _token_ids(text: str) -> list[int]:
    try:
        ids = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError("--token-ids must be comma-separated integers") from exc
    return ids


def _max_nodes(text: str) -> int | None:
    if text == "all":
        return None
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError("--max-feature-nodes must be an integer or 'all'") from exc
    if value < 1:
        raise argparse.ArgumentTypeError("--max-feature-nodes must be >= 1")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not in [0, 1]")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m inference")
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("attribute", help="compute, prune and export an attribution graph")
    p.add_argument("--model", required=True, help="HF model folder or hub id")
    p.add_argument(
        "--transcoders", required=True, help="config.yaml, CLT folder or layer_*.safetensors folder"
    )
    prompt = p.add_mutually_exclusive_group(required=True)
    prompt.add_argument("--prompt", help="prompt text")
    prompt.add_argument(
        "--token-ids", type=_token_ids, help="comma-separated token ids, used as given"
    )
    p.add_argument(
        "--max-feature-nodes", type=_max_nodes, default=None, help="N or 'all' (default)"
    )
    p.add_argument("--max-n-logits", type=int, default=10)
    p.add_argument("--desired-logit-prob", type=_fraction, default=0.95)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--node-threshold", type=_fraction, default=0.8)
    p.add_argument("--edge-threshold", type=_fraction, default=0.98)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    p.add_argument("--slug", default=None, help="graph slug (default: the output file's stem)")
    p.add_argument("--out", required=True, type=Path, help="pruned graph JSON (schema v1)")
    p.add_argument(
        "--raw", type=Path, default=None, help="also write the unpruned graph as safetensors"
    )
    return parser


def run_attribute(args: argparse.Namespace, progress: Callable[[str, float], None]) -> dict:
    import torch

    from inference.engine import ReplacementModel, attribute, graph_to_json, prune, save_raw

    if args.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda requested but CUDA is not available")
    if args.max_n_logits < 1 or args.batch_size < 1:
        raise ValueError("--max-n-logits and --batch-size must be >= 1")
    if not args.out.parent.is_dir():
        raise ValueError(f"output folder does not exist: {args.out.parent}")
    if args.prompt is not None and not args.prompt.strip():
        raise ValueError("the prompt is empty")
    if args.token_ids is not None and not args.token_ids:
        raise ValueError("the prompt is empty")
    model = ReplacementModel.load(
        args.model, args.transcoders, device=args.device, dtype=getattr(torch, args.dtype)
    )
    prompt = cast(str | list[int], args.prompt if args.prompt is not None else args.token_ids)
    graph = attribute(
        prompt,
        model,
        max_n_logits=args.max_n_logits,
        desired_logit_prob=args.desired_logit_prob,
        max_feature_nodes=args.max_feature_nodes,
        batch_size=args.batch_size,
        on_progress=progress,
    )
    pruned = prune(graph, node_threshold=args.node_threshold, edge_threshold=args.edge_threshold)
    data = graph_to_json(
        graph,
        pruned,
        slug=args.slug or args.out.stem,
        node_threshold=args.node_threshold,
        edge_threshold=args.edge_threshold,
    )
    args.out.write_text(json.dumps(data))
    if args.raw is not None:
        save_raw(graph, args.raw)
    return data


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from inference.engine import (
        GraphFormatError,
        ModelLoadError,
        TranscoderLoadError,
        UnsupportedModelError,
    )

    progress = _Progress(sys.stderr.isatty())
    if not progress.enabled:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # keep logs and error output to plain lines
    try:
        data = run_attribute(args, progress)
    except (
        ModelLoadError,
        TranscoderLoadError,
        UnsupportedModelError,
        GraphFormatError,
        ValueError,
        FileNotFoundError,
    ) as exc:
        progress.close()
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    progress.close()
    print(f"wrote {args.out} ({len(data['nodes'])} nodes, {len(data['links'])} links)")
    return 0
