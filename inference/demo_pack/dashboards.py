"""The demo pack's feature dashboards: the engine's `compute_dashboards` (the same code as
`python -m inference dashboards` and the dashboards job) on held-out corpus rows, one
`layer_{i}.jsonl.gz` per layer. Only the settings are the pack's own: its contexts are short
templated sentences, so windows are narrow and a few examples per interval suffice.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

from inference.engine import compute_dashboards, load_transcoders, write_layer


@dataclass(frozen=True)
class DashboardConfig:
    n_top_examples: int = 10
    # Besides the top examples, this many activation intervals of the active tokens...
    n_intervals: int = 3
    # ...each with this many randomly drawn examples, so a dashboard shows weak activations too.
    examples_per_interval: int = 4
    # Example windows: tokens before and after the activating token.
    tokens_before: int = 12
    tokens_after: int = 4
    n_logits: int = 10
    histogram_bins: int = 16
    # Rows per forward pass.
    batch_size: int = 64


def write_dashboards(
    folder: Path,
    transcoders: Path,
    rows: torch.Tensor,
    model: LlamaForCausalLM,
    tokenizer: PreTrainedTokenizerFast,
    config: DashboardConfig,
    *,
    seed: int,
    on_progress: Callable[[str, float], None] | None = None,
) -> None:
    """`folder/layer_{i}.jsonl.gz` for every layer of the saved set `transcoders`, computed on
    `rows` (n_rows, context), each starting with BOS."""
    compute_dashboards(
        model,
        load_transcoders(transcoders),
        list(rows),
        tokenizer=tokenizer,
        top_k=config.n_top_examples,
        tokens_before=config.tokens_before,
        tokens_after=config.tokens_after,
        n_intervals=config.n_intervals,
        examples_per_interval=config.examples_per_interval,
        histogram_bins=config.histogram_bins,
        n_logits=config.n_logits,
        batch_size=config.batch_size,
        seed=seed,
        on_progress=on_progress,
        on_layer=lambda layer, features: write_layer(folder / f"layer_{layer}.jsonl.gz", features),
    )
