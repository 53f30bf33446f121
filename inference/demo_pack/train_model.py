"""Train the demo's Llama-architecture language model from scratch on the generated corpus."""

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from inference.demo_pack.corpus import Sentence


@dataclass(frozen=True)
class ModelConfig:
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    # Width of the gated MLP (Llama's intermediate_size); 4 x d_model as in most small Llamas.
    d_mlp: int = 512
    # Every training row is exactly this many tokens, BOS first.
    context: int = 64


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 1000
    batch_size: int = 64
    lr: float = 3e-3
    warmup_steps: int = 60
    # Cosine decay ends at this fraction of `lr`.
    min_lr_fraction: float = 0.1
    weight_decay: float = 0.1
    grad_clip: float = 1.0


def token_rows(
    stream: Iterator[Sentence], tokenizer: PreTrainedTokenizerFast, *, n_rows: int, context: int
) -> torch.Tensor:
    """Rows of BOS followed by whole sentences, each row cut at `context` tokens.

    Every row starts a fresh document, so a prompt encoded with BOS sits exactly where training
    sentences do. The sentence cut at the row end is dropped, not carried into the next row.
    """
    bos = tokenizer.bos_token_id
    assert bos is not None
    cache: dict[str, list[int]] = {}

    def encode(text: str) -> list[int]:
        # The templates repeat, so the cache turns tokenisation into dictionary lookups.
        if text not in cache:
            cache[text] = tokenizer.encode(text, add_special_tokens=False)
        return cache[text]

    rows = torch.empty((n_rows, context), dtype=torch.long)
    for r in range(n_rows):
        ids = [bos, *encode(next(stream).text)]
        while len(ids) < context:
            ids += encode(" " + next(stream).text)
        rows[r] = torch.tensor(ids[:context])
    return rows


def build_model(config: ModelConfig, tokenizer: PreTrainedTokenizerFast) -> LlamaForCausalLM:
    hf_config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.d_model,
        intermediate_size=config.d_mlp,
        num_hidden_layers=config.n_layers,
        num_attention_heads=config.n_heads,
        num_key_value_heads=config.n_heads,
        max_position_embeddings=config.context,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    return LlamaForCausalLM(hf_config)


def _lr_at(step: int, config: TrainConfig) -> float:
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    cosine = 0.5 * (1 + math.cos(math.pi * progress))
    return config.lr * (config.min_lr_fraction + (1 - config.min_lr_fraction) * cosine)


def train_model(
    model: LlamaForCausalLM,
    rows: torch.Tensor,
    config: TrainConfig,
    *,
    on_step: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Train in place on `rows` (steps * batch_size, context), each row seen once, in order.
    Returns the training loss of every step."""
    assert rows.shape[0] >= config.steps * config.batch_size, "not enough rows for the schedule"
    # Norm gains and biases are not decayed: decaying a gain towards 0 only fights the norm.
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": config.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=config.lr,
        betas=(0.9, 0.95),
    )
    model.train()
    losses = []
    for step in range(config.steps):
        for group in optimizer.param_groups:
            group["lr"] = _lr_at(step, config)
        batch = rows[step * config.batch_size : (step + 1) * config.batch_size]
        loss = model(input_ids=batch, labels=batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        losses.append(loss.item())
        if on_step is not None:
            on_step(step, losses[-1])
    model.eval()
    return losses
