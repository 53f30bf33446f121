"""Feature dashboards in circuit-tracer's feature JSON shape, one gzipped JSON-lines bundle per
layer (`layer_{i}.jsonl.gz`, line n = feature n), computed on held-out corpus text.

Statistics skip the BOS position: every row starts with the same BOS token, so a feature that
fires there would fill its dashboard with identical, uninformative examples.
"""

import gzip
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

from inference.demo_pack.train_transcoders import Transcoder


@dataclass(frozen=True)
class DashboardConfig:
    n_top_examples: int = 10
    # Besides the top examples, this many activation-quantile intervals of the active tokens...
    n_intervals: int = 3
    # ...each with this many randomly drawn examples, so a dashboard shows weak activations too.
    examples_per_interval: int = 4
    # Example windows: tokens before and after the activating token.
    tokens_before: int = 12
    tokens_after: int = 4
    n_logits: int = 10
    histogram_bins: int = 16
    # Features are laid out per feature in chunks of this many (a chunk x n_tokens copy).
    chunk: int = 256


def _round(values: torch.Tensor) -> list[float]:
    # Three decimals keep the bundles small; the viewer shows two.
    return [round(v, 3) for v in values.tolist()]


def _example(
    acts: torch.Tensor,
    rows: torch.Tensor,
    token_strings: list[str],
    position: int,
    config: DashboardConfig,
) -> tuple[tuple[int, ...], dict[str, Any]]:
    """The window around flat token `position` (row-major over rows) and its JSON example."""
    context = rows.shape[1]
    row, pos = divmod(position, context)
    start = max(1, pos - config.tokens_before)  # never show BOS
    end = min(context, pos + config.tokens_after + 1)
    ids = tuple(rows[row, start:end].tolist())
    example = {
        "tokens": [token_strings[i] for i in ids],
        "tokens_acts_list": _round(acts[row * context + start : row * context + end]),
        "train_token_ind": pos - start,
        "is_repeated_datapoint": False,
    }
    return ids, example


def _feature_json(
    index: int,
    acts: torch.Tensor,
    rows: torch.Tensor,
    token_strings: list[str],
    logit_weights: torch.Tensor,
    transcoder_id: str,
    config: DashboardConfig,
    generator: torch.Generator,
) -> dict[str, Any]:
    """One feature; `acts` (n_tokens,) are its activations over the flattened rows."""
    # NaN marks special tokens (BOS, EOS), which are never outputs; rank them last both ways.
    top = logit_weights.nan_to_num(nan=float("-inf")).topk(config.n_logits)
    bottom = (-logit_weights).nan_to_num(nan=float("-inf")).topk(config.n_logits)
    feature: dict[str, Any] = {
        "transcoder_id": transcoder_id,
        "index": index,
        "examples_quantiles": [],
        "top_logits": [token_strings[i] for i in top.indices.tolist()],
        "bottom_logits": [token_strings[i] for i in bottom.indices.tolist()],
        "act_min": 0.0,
        "act_max": 0.0,
        "quantile_values": [],
        "histogram": [0] * config.histogram_bins,
        "activation_frequency": 0.0,
    }
    active = (acts > 0).nonzero().squeeze(-1)
    if active.numel() == 0:
        return feature
    values = acts[active]
    act_max = float(values.max())
    feature["act_min"] = round(float(values.min()), 4)
    feature["act_max"] = round(act_max, 4)
    feature["activation_frequency"] = active.numel() / acts.numel()
    feature["histogram"] = torch.histc(values, config.histogram_bins, 0, act_max).int().tolist()

    # The corpus is templated, so the same window recurs, and a feature often fires on several
    # tokens of one row; show each window once and each row once per feature.
    seen_windows: set[tuple[int, ...]] = set()
    seen_rows: set[int] = set()

    def take(positions: list[int], limit: int) -> list[dict[str, Any]]:
        examples = []
        for position in positions:
            row = position // rows.shape[1]
            ids, example = _example(acts, rows, token_strings, position, config)
            if ids not in seen_windows and row not in seen_rows:
                seen_windows.add(ids)
                seen_rows.add(row)
                examples.append(example)
                if len(examples) == limit:
                    break
        return examples

    order = active[values.argsort(descending=True)]  # active tokens, strongest first
    candidates = order[: 20 * config.n_top_examples].tolist()
    groups = [
        {"quantile_name": "Top activations", "examples": take(candidates, config.n_top_examples)}
    ]
    boundaries = torch.linspace(0, order.numel(), config.n_intervals + 1).long().tolist()
    quantile_values = []
    for i in range(config.n_intervals):
        interval = order[boundaries[i] : boundaries[i + 1]]
        if interval.numel() == 0:
            continue
        quantile_values.append(round(float(acts[interval[-1]]), 4))
        shuffled = interval[torch.randperm(interval.numel(), generator=generator)]
        picked = take(
            shuffled[: 20 * config.examples_per_interval].tolist(), config.examples_per_interval
        )
        groups.append({"quantile_name": f"Subsample Interval {i}", "examples": picked})
    feature["examples_quantiles"] = groups
    feature["quantile_values"] = quantile_values
    return feature


@torch.no_grad()
def write_layer_dashboards(
    path: Path,
    layer: int,
    transcoder: Transcoder,
    resid_mid: torch.Tensor,
    rows: torch.Tensor,
    model: LlamaForCausalLM,
    tokenizer: PreTrainedTokenizerFast,
    config: DashboardConfig,
    *,
    seed: int,
    on_feature: Callable[[int], None] | None = None,
) -> None:
    """Write `path` (a .jsonl.gz) with every feature of `transcoder`, dead ones included.

    `resid_mid` (n_rows * context, d_model) is the layer's input on `rows` (n_rows, context).
    Output tokens: the decoder direction through the final RMSNorm gain and the unembedding.
    """
    generator = torch.Generator().manual_seed(seed * 1000 + layer)
    token_strings = [cast(str, tokenizer.decode([i])) for i in range(len(tokenizer))]
    final_norm = cast(nn.Module, model.model.norm)
    unembed = model.lm_head.weight * final_norm.weight  # (vocab, d_model)
    logit_weights = transcoder.W_dec @ unembed.T  # (F, vocab)
    special = torch.tensor(tokenizer.all_special_ids)
    not_bos = torch.ones(rows.shape, dtype=torch.bool)
    not_bos[:, 0] = False
    not_bos = not_bos.flatten()
    n_features = transcoder.W_enc.shape[0]
    path.parent.mkdir(parents=True, exist_ok=True)
    # mtime=0 and no file name in the header, so the same features give the same bytes.
    with (
        open(path, "wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as out,
    ):
        # TopK needs every feature's pre-activation, so encode all features once.
        all_acts = transcoder.encode(resid_mid) * not_bos[:, None]  # (n_tokens, F)
        for lo in range(0, n_features, config.chunk):
            hi = min(n_features, lo + config.chunk)
            acts = all_acts[:, lo:hi].T.contiguous()  # (chunk, n_tokens)
            for f in range(lo, hi):
                weights = logit_weights[f].clone()
                weights[special] = float("nan")
                feature = _feature_json(
                    f,
                    acts[f - lo],
                    rows,
                    token_strings,
                    weights,
                    f"layer_{layer}",
                    config,
                    generator,
                )
                out.write(
                    (json.dumps(feature, separators=(",", ":"), ensure_ascii=False) + "\n").encode()
                )
                if on_feature is not None:
                    on_feature(f)


def read_layer_dashboards(path: Path) -> list[dict[str, Any]]:
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        return [json.loads(line) for line in lines]
