"""Freezing parts of an HF model for one forward pass: attention patterns, norm denominators, and
hooks at the transcoders' hook points, all installed by one context manager that removes them.

Two users:
- attribution (replacement.py) makes the model linear: attention runs with detached queries and
  keys (``DETACHED_PATTERN``) and every residual-path norm divides by its own denominator taken
  as a constant (``frozen_norm(..., scale_from=torch.Tensor.detach)``);
- interventions (interventions.py) replay a clean run in batch row 0: every row attends with row
  0's pattern (``ROW0_PATTERN``) and divides by row 0's denominator
  (``frozen_norm(..., scale_from=first_row)``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from contextvars import ContextVar
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.masking_utils import AttentionMaskInterface, eager_mask
from transformers.modeling_utils import AttentionInterface

from .adapters import ModelAdapter, NormKind, resolve

DETACHED_PATTERN = "circuit_atlas_frozen"
ROW0_PATTERN = "circuit_atlas_row0_pattern"

Forward = Callable[..., Any]
# (module, args, kwargs) -> None: a forward pre-hook registered with_kwargs=True.
PreHook = Callable[[nn.Module, tuple[Any, ...], dict[str, Any]], None]
# (module, args, output) -> replacement output or None.
Hook = Callable[[nn.Module, Any, Any], Any]


def _family_eager(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    *args: Any,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    # Each HF modeling file defines its family's eager attention (softcapping, sinks, sliding
    # windows, GQA): run exactly that with the queries and keys the caller chose.
    eager = sys.modules[type(module).__module__].eager_attention_forward
    result: tuple[torch.Tensor, torch.Tensor | None] = eager(
        module, query, key, value, *args, **kwargs
    )
    return result


# Set by `recording_patterns`: layer index -> that layer's frozen pattern (batch row 0).
_PATTERNS: ContextVar[dict[int, torch.Tensor] | None] = ContextVar("patterns", default=None)


@contextmanager
def recording_patterns() -> Iterator[dict[int, torch.Tensor]]:
    """Every ``DETACHED_PATTERN`` attention run inside stores its (heads, n, n) pattern here, by
    its module's ``layer_idx``: the hand-written backward pass (backward.py) needs them."""
    patterns: dict[int, torch.Tensor] = {}
    token = _PATTERNS.set(patterns)
    try:
        yield patterns
    finally:
        _PATTERNS.reset(token)


def _detached_pattern(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    *args: Any,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Only the value path carries gradient: the pattern is a constant."""
    output, pattern = _family_eager(module, query.detach(), key.detach(), value, *args, **kwargs)
    patterns = _PATTERNS.get()
    if patterns is not None and pattern is not None:
        patterns[int(getattr(module, "layer_idx", 0))] = pattern.detach()[0]
    return output, pattern


def _row0_pattern(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    *args: Any,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Every row attends with row 0's pattern (its queries and keys) over its own values."""
    q, k = query[:1].expand_as(query), key[:1].expand_as(key)
    return _family_eager(module, q, k, value, *args, **kwargs)


for _name, _function in ((DETACHED_PATTERN, _detached_pattern), (ROW0_PATTERN, _row0_pattern)):
    AttentionInterface.register(_name, _function)
    AttentionMaskInterface.register(_name, eager_mask)


def norm_eps(module: nn.Module) -> float:
    return float(getattr(module, "variance_epsilon", getattr(module, "eps", 1e-6)))


def norm_scale(x: torch.Tensor, kind: NormKind, eps: float) -> torch.Tensor:
    """(..., n, 1) float32: the 1/denominator the norm applies to `x`."""
    xf = x.float()
    if kind == "layernorm":
        return torch.rsqrt(xf.var(-1, keepdim=True, unbiased=False) + eps)
    return torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)


def normalized(x: torch.Tensor, kind: NormKind, scale: torch.Tensor) -> torch.Tensor:
    """float32 `x` normalised by `scale` before the norm's weight (centred for a layernorm; the
    centring is linear, so it stays in the autograd graph)."""
    xf = x.float()
    return (xf - xf.mean(-1, keepdim=True)) * scale if kind == "layernorm" else xf * scale


def first_row(x: torch.Tensor) -> torch.Tensor:
    return x[:1]


class _FrozenRMSNorm(torch.autograd.Function):
    """An RMS norm with a constant denominator: the forward computes exactly what the plain
    expression does, and the backward is one multiplication by ``scale x weight`` instead of one
    per factor (a linearised backward pass crosses three such norms per block for every row)."""

    generate_vmap_rule = True  # is_grads_batched runs the backward under vmap

    @staticmethod
    def forward(x: torch.Tensor, scale: torch.Tensor, weight: torch.Tensor, plus_one: bool) -> Any:
        norm = x.float() * scale
        if plus_one:
            return (norm * (1.0 + weight.float())).type_as(x)
        return weight * norm.to(x.dtype)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
        x, scale, weight, plus_one = inputs
        gain = 1.0 + weight.float() if plus_one else weight.float()
        ctx.save_for_backward(scale * gain)
        ctx.dtype = x.dtype

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> Any:
        (factor,) = ctx.saved_tensors
        return (grad.float() * factor).to(ctx.dtype), None, None, None


def frozen_norm(
    module: nn.Module,
    kind: NormKind,
    scale_from: Callable[[torch.Tensor], torch.Tensor],
    on_normalized: Callable[[torch.Tensor], None] | None = None,
    on_scale: Callable[[torch.Tensor], None] | None = None,
) -> Forward:
    """A forward for norm `module` whose denominator is computed from ``scale_from(x)`` (a
    detached `x`, or its first batch row); ``on_normalized`` sees the normalised input and
    ``on_scale`` the (..., n, 1) constant 1/denominator."""
    eps = norm_eps(module)

    def forward(x: torch.Tensor) -> torch.Tensor:
        weight: torch.Tensor = module.weight  # type: ignore[assignment]
        scale = norm_scale(scale_from(x), kind, eps)
        if on_scale is not None:
            on_scale(scale)
        if kind != "layernorm" and on_normalized is None:
            out: torch.Tensor = _FrozenRMSNorm.apply(x, scale, weight, kind == "rms_plus_one")
            return out
        norm = normalized(x, kind, scale)
        if kind == "layernorm":
            norm = norm.to(x.dtype)  # a layernorm hands on its input's dtype, the RMS norms float32
        if on_normalized is not None:
            on_normalized(norm)
        if kind == "layernorm":
            bias: torch.Tensor | None = module.bias  # type: ignore[assignment]
            out = norm * weight
            return out + bias if bias is not None else out
        if kind == "rms_plus_one":
            return (norm * (1.0 + weight.float())).type_as(x)
        return weight * norm.to(x.dtype)

    return forward


def residual_norms(
    model: PreTrainedModel, adapter: ModelAdapter
) -> list[tuple[int | None, str, nn.Module]]:
    """Every norm on a residual path as (layer, block-relative path, module); the final norm
    comes first, with layer None and its model-relative path."""
    layers = resolve(model, adapter.layers)
    assert isinstance(layers, nn.ModuleList)
    norms: list[tuple[int | None, str, nn.Module]] = [
        (None, adapter.final_norm, resolve(model, adapter.final_norm))
    ]
    for layer, block in enumerate(layers):
        norms += [(layer, path, resolve(block, path)) for path in adapter.block_norms]
    return norms


def first_tensor_arg(args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor:
    """The hidden states a hooked module was called with, positionally or by keyword."""
    value = args[0] if args else kwargs.get("hidden_states", kwargs.get("input"))
    assert isinstance(value, torch.Tensor)
    return value


@contextmanager
def _attention_implementation(model: PreTrainedModel, name: str) -> Iterator[None]:
    configs = [model.config]
    text_config = getattr(model.config, "text_config", None)
    if text_config is not None:
        configs.append(text_config)
    previous = [c._attn_implementation for c in configs]
    try:
        for c in configs:
            c._attn_implementation = name
        yield
    finally:
        for c, p in zip(configs, previous, strict=True):
            c._attn_implementation = p


@contextmanager
def installed(
    model: PreTrainedModel,
    *,
    attention: str | None = None,
    forwards: Sequence[tuple[nn.Module, Forward]] = (),
    pre_hooks: Sequence[tuple[nn.Module, PreHook]] = (),
    hooks: Sequence[tuple[nn.Module, Hook]] = (),
) -> Iterator[None]:
    """Run `model` with another registered attention function, replaced module forwards, forward
    pre-hooks (with kwargs) and forward hooks; everything is restored on exit, even on error."""
    with ExitStack() as stack:
        if attention is not None:
            stack.enter_context(_attention_implementation(model, attention))
        for module, forward in forwards:
            module.forward = forward
            stack.callback(delattr, module, "forward")  # back to the class's forward
        for module, pre_hook in pre_hooks:
            stack.callback(module.register_forward_pre_hook(pre_hook, with_kwargs=True).remove)
        for module, hook in hooks:
            stack.callback(module.register_forward_hook(hook).remove)
        yield


__all__ = [
    "DETACHED_PATTERN",
    "ROW0_PATTERN",
    "first_row",
    "first_tensor_arg",
    "frozen_norm",
    "installed",
    "norm_eps",
    "norm_scale",
    "normalized",
    "recording_patterns",
    "residual_norms",
]
