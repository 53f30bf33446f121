"""`python -m inference attribute ...`: one attribution graph from the command line
(`python -m inference dashboards ...`: see dashboards_cli.py).

Bad input (paths, architecture, transcoder shapes, prompt) prints one line and exits with 2.
Defaults and bounds are the contract's (``contract.params.AttributeParams``), as a job's are,
except ``--max-feature-nodes``, which defaults to every active feature ("all").
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, cast

from contract.params import ENGINE_BATCH_SIZE, AttributeParams
from inference import dashboards_cli

if TYPE_CHECKING:
    from inference.engine import ReplacementModel

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


def _setting(name: str) -> Callable[[str], float]:
    """An argparse type for ``AttributeParams``' setting ``name``, refusing what is out of bounds."""
    spec = AttributeParams.spec(name)
    integer = isinstance(spec.low, int) and not isinstance(spec.default, float)
    flag = "--" + name.replace("_", "-")

    def parse(text: str) -> float:
        try:
            value = int(text) if integer else float(text)
        except ValueError:
            kind = "an integer" if integer else "a number"
            raise argparse.ArgumentTypeError(f"{flag} must be {kind}") from None
        if not spec.contains(value):
            raise argparse.ArgumentTypeError(f"{flag} must be {spec.range_text()}, got {text}")
        return value

    return parse


def _max_nodes(text: str) -> int | None:
    return None if text == "all" else int(_setting("max_feature_nodes")(text))


def _ranking_entries(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("--ranking-entries must be an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"--ranking-entries must be >= 1, got {text}")
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
    for name in ("max_n_logits", "desired_logit_prob", "node_threshold", "edge_threshold"):
        option = "--" + name.replace("_", "-")
        p.add_argument(option, type=_setting(name), default=getattr(AttributeParams, name))
    p.add_argument("--batch-size", type=_setting("batch_size"), default=ENGINE_BATCH_SIZE)
    p.add_argument(
        "--ranking-entries",
        type=_ranking_entries,
        default=None,
        help="rank features by the sparse ranking, each row keeping this many magnitudes "
        "(for long prompts: no dense ranking buffer; the same graph); default: the dense one",
    )
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    p.add_argument("--slug", default=None, help="graph slug (default: the output file's stem)")
    p.add_argument("--out", type=Path, default=None, help="pruned graph JSON (schema v1)")
    p.add_argument(
        "--estimate-only",
        action="store_true",
        help="print the memory planner's estimate of the run and exit, without attributing",
    )
    p.add_argument(
        "--raw", type=Path, default=None, help="also write the unpruned graph as safetensors"
    )
    dashboards_cli.add_parser(commands)
    return parser


def estimate_lines(
    model: ReplacementModel, prompt: str | list[int], args: argparse.Namespace
) -> list[str]:
    """The planner's estimate of this run (inference/engine/memory_plan.py), term by term: one
    forward pass and the encoders, no backward pass."""
    from inference.engine import memory_plan

    active = memory_plan.measure(model, model.tokenize(prompt))
    shapes = memory_plan.Shapes.of(model)
    planned = memory_plan.estimate(
        shapes,
        active,
        batch_size=args.batch_size,
        max_feature_nodes=args.max_feature_nodes,
        n_logits=args.max_n_logits,
        layout=memory_plan.Layout(ranking_entries=args.ranking_entries),
    )
    size = memory_plan.readable_bytes
    nodes = args.max_feature_nodes or "all"
    ranking = (
        "dense ranking"
        if args.ranking_entries is None
        else f"sparse ranking of {args.ranking_entries} entries a row"
    )
    device_bytes = memory_plan.device_memory(model.device)
    lines = [
        f"estimate: {size(planned.device_total)} on {args.device} (run {size(planned.peak)} + "
        f"weights {size(planned.weights)}); {active.n_pos} tokens, {active.total} active "
        f"features, batch size {args.batch_size}, max_feature_nodes {nodes}, {ranking}",
        f"this device has {size(device_bytes)}",
    ]
    try:
        best = memory_plan.plan(
            shapes,
            active,
            budget_bytes=device_bytes,
            max_feature_nodes=args.max_feature_nodes,
            n_logits=args.max_n_logits,
        )
        lines.append(f"the planner would run it as: {memory_plan.describe(best)}")
    except memory_plan.MemoryBudgetExceeded as exc:
        lines.append(f"the planner would refuse it: {exc}")
    return lines + [f"  {term}: {size(n)}" for term, n in planned.terms.items()]


def run_attribute(
    args: argparse.Namespace, progress: Callable[[str, float], None]
) -> dict | list[str]:
    import torch

    from inference.engine import ReplacementModel, attribute, graph_to_json, prune, save_raw

    if args.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda requested but CUDA is not available")
    if args.out is None and not args.estimate_only:
        raise ValueError("--out is required (unless --estimate-only)")
    if args.out is not None and not args.out.parent.is_dir():
        raise ValueError(f"output folder does not exist: {args.out.parent}")
    if args.prompt is not None and not args.prompt.strip():
        raise ValueError("the prompt is empty")
    if args.token_ids is not None and not args.token_ids:
        raise ValueError("the prompt is empty")
    model = ReplacementModel.load(
        args.model, args.transcoders, device=args.device, dtype=getattr(torch, args.dtype)
    )
    prompt = cast(str | list[int], args.prompt if args.prompt is not None else args.token_ids)
    if args.estimate_only:
        return estimate_lines(model, prompt, args)
    graph = attribute(
        prompt,
        model,
        max_n_logits=args.max_n_logits,
        desired_logit_prob=args.desired_logit_prob,
        max_feature_nodes=args.max_feature_nodes,
        batch_size=args.batch_size,
        ranking_entries=args.ranking_entries,
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
        if args.command == "dashboards":
            written = dashboards_cli.run(args, progress)
        else:
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
    except KeyboardInterrupt:
        progress.close()
        print("interrupted: run the same command again to continue", file=sys.stderr)
        return 130
    progress.close()
    if args.command == "dashboards":
        print(f"wrote {len(written)} layer files to {args.out}")
        return 0
    if isinstance(data, list):  # --estimate-only
        print("\n".join(data))
        return 0
    print(f"wrote {args.out} ({len(data['nodes'])} nodes, {len(data['links'])} links)")
    return 0
