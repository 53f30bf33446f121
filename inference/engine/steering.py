"""Steered generation: the default and the steered continuation of a prompt, side by side.

`steer_generate` decodes both continuations in one batch of two with a KV cache: row 0 is the
plain model, row 1 the model with the interventions (free mode: the real network, nothing frozen;
see interventions.py for the actions). Interventions at a given position apply while the prompt
is read; every-position interventions (``position=None``) apply to every prompt token after the
special first token and, with ``apply_to_generated``, to every generated token too.

Sampling is coupled: at each step one uniform number, drawn from a generator seeded with
``seed``, picks the token of both rows by inverse CDF, so identical distributions give identical
tokens and the two continuations differ only where the interventions change the model.
``temperature=0`` is greedy decoding. A continuation ends after ``n_tokens`` tokens or after an
end-of-sequence token (kept).
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from .interventions import (
    InterventionError,
    InterventionHooks,
    InterventionLike,
    context_length,
    tokenize_prompt,
    validate_interventions,
)
from .replacement import ReplacementModel

MAX_NEW_TOKENS = 1024  # the engine's own bound; the API bounds n_tokens tighter


@dataclass
class GeneratedToken:
    token: int
    text: str
    probability: float  # of this token under the model at this step (temperature 1)
    top_tokens: list[int]  # the top_k next tokens at this step, most probable first
    top_texts: list[str]
    top_probabilities: list[float]


@dataclass
class Continuation:
    text: str  # the generated text, decoded as a whole
    tokens: list[GeneratedToken] = field(default_factory=list)

    @property
    def token_ids(self) -> list[int]:
        return [t.token for t in self.tokens]


@dataclass
class SteeringResult:
    input_tokens: torch.Tensor  # (n_pos,) the tokenized prompt, special first token included
    default: Continuation
    steered: Continuation
    n_tokens: int
    temperature: float
    seed: int
    apply_to_generated: bool

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (lists, numbers, strings) for storing a run."""
        data = dataclasses.asdict(self)
        data["input_tokens"] = self.input_tokens.tolist()
        return data


def _check_settings(
    n_tokens: object, temperature: object, seed: object, top_k: object, vocab: int
) -> None:
    if isinstance(n_tokens, bool) or not isinstance(n_tokens, int):
        raise InterventionError("n_tokens", f"expected an integer, got {n_tokens!r}")
    if not 1 <= n_tokens <= MAX_NEW_TOKENS:
        raise InterventionError("n_tokens", f"{n_tokens} is outside 1..{MAX_NEW_TOKENS}")
    if isinstance(temperature, bool) or not isinstance(temperature, int | float):
        raise InterventionError("temperature", f"expected a number, got {temperature!r}")
    if not (math.isfinite(temperature) and 0 <= temperature <= 100):
        raise InterventionError("temperature", f"{temperature!r} is outside [0, 100]")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InterventionError("seed", f"expected an integer, got {seed!r}")
    if not 0 <= seed < 2**63:
        raise InterventionError("seed", f"{seed} is outside [0, 2**63)")
    if isinstance(top_k, bool) or not isinstance(top_k, int):
        raise InterventionError("top_k", f"expected an integer, got {top_k!r}")
    if not 1 <= top_k <= min(vocab, 100):
        raise InterventionError("top_k", f"{top_k} is outside 1..{min(vocab, 100)}")


def _eos_ids(rm: ReplacementModel) -> set[int]:
    ids = rm.tokenizer.eos_token_id if rm.tokenizer is not None else None
    if ids is None:
        ids = getattr(rm.text_config, "eos_token_id", None)
    if ids is None:
        return set()
    return {int(i) for i in (ids if isinstance(ids, list) else [ids])}


def _pick(logits: torch.Tensor, temperature: float, generator: torch.Generator) -> torch.Tensor:
    """(2, vocab) float32 -> (2,) tokens, both rows driven by the same random number."""
    if temperature == 0:
        return logits.argmax(-1)
    cdf = torch.cumsum(torch.softmax(logits / temperature, dim=-1), dim=-1)
    u = torch.rand(1, generator=generator, dtype=torch.float64).item()
    threshold = (u * cdf[:, -1:]).to(cdf.dtype)
    return torch.searchsorted(cdf, threshold).squeeze(1).clamp(max=logits.shape[-1] - 1)


def _cache_name(rm: ReplacementModel) -> str:
    """The KV cache's name in this transformers release: ``cache`` since 5.2x (the old
    ``past_key_values`` still works there, with a warning, until its removal)."""
    parameters = inspect.signature(rm.model.forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"


def _decode(rm: ReplacementModel, ids: list[int]) -> str:
    if rm.tokenizer is None:
        return "".join(rm.decode_token(i) for i in ids)
    return str(rm.tokenizer.decode(ids))


@torch.no_grad()
def steer_generate(
    prompt: str | list[int] | torch.Tensor,
    model: ReplacementModel,
    interventions: Sequence[InterventionLike],
    *,
    n_tokens: int = 32,
    temperature: float = 1.0,
    seed: int = 0,
    apply_to_generated: bool = True,
    top_k: int = 5,
) -> SteeringResult:
    """Default and steered continuations of `prompt`, with the top-k next-token probabilities at
    every generated position (see the module docstring)."""
    vocab = int(model.unembed_weight.shape[0])
    _check_settings(n_tokens, temperature, seed, top_k, vocab)
    if not isinstance(apply_to_generated, bool):
        raise InterventionError("apply_to_generated", "expected true or false")
    tokens = tokenize_prompt(model, prompt)
    context = context_length(model)
    if context is not None and len(tokens) + n_tokens > context:
        raise InterventionError(
            "n_tokens",
            f"{len(tokens)} prompt tokens + {n_tokens} new tokens is more than the model's "
            f"context ({context})",
        )
    ops = validate_interventions(interventions, model, len(tokens))
    hooks = InterventionHooks(model, ops, apply_to_generated=apply_to_generated)
    generator = torch.Generator().manual_seed(seed)
    eos = _eos_ids(model)
    device, n_pos = model.device, len(tokens)
    cache_name = _cache_name(model)

    picked: list[torch.Tensor] = []  # (2,) per step
    probs_top: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    with hooks.installed():
        hooks.begin(torch.arange(n_pos))
        out = model.model(input_ids=tokens[None].expand(2, -1).to(device), use_cache=True)
        for step in range(n_tokens):
            logits = out.logits[:, -1].float()
            probs = torch.softmax(logits, dim=-1)
            chosen = _pick(logits, float(temperature), generator)
            top_p, top_i = torch.topk(probs, top_k, dim=-1)
            probs_top.append((probs.gather(1, chosen[:, None]).squeeze(1), top_p, top_i))
            picked.append(chosen)
            done = [any(int(p[row]) in eos for p in picked) for row in (0, 1)]
            if step == n_tokens - 1 or all(done):
                break
            hooks.begin(torch.tensor([n_pos + step]), generated=True)
            out = model.model(
                input_ids=chosen[:, None].to(device),
                **{cache_name: out[cache_name]},
                use_cache=True,
            )

    def continuation(row: int) -> Continuation:
        generated: list[GeneratedToken] = []
        for chosen, (p_chosen, top_p, top_i) in zip(picked, probs_top, strict=True):
            token = int(chosen[row])
            ids = top_i[row].tolist()
            generated.append(
                GeneratedToken(
                    token=token,
                    text=model.decode_token(token),
                    probability=float(p_chosen[row]),
                    top_tokens=ids,
                    top_texts=[model.decode_token(i) for i in ids],
                    top_probabilities=top_p[row].tolist(),
                )
            )
            if token in eos:
                break
        return Continuation(_decode(model, [t.token for t in generated]), generated)

    return SteeringResult(
        input_tokens=tokens,
        default=continuation(0),
        steered=continuation(1),
        n_tokens=n_tokens,
        temperature=float(temperature),
        seed=seed,
        apply_to_generated=apply_to_generated,
    )


__all__ = [
    "MAX_NEW_TOKENS",
    "Continuation",
    "GeneratedToken",
    "SteeringResult",
    "steer_generate",
]
