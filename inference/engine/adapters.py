"""One declarative adapter per model family: where the hook points live and which norms freeze.

Hook points use circuit-tracer's (TransformerLens) vocabulary, because transcoder configs name
them that way:

- ``hook_resid_mid``: the residual stream after attention (input of the pre-MLP norm).
- ``ln2.hook_normalized``: the pre-MLP norm's ``x / rms(x)`` before its weight is applied
  (for Gemma, before the ``(1 + w)`` scale).
- ``mlp.hook_in`` / ``mlp.hook_out``: the MLP's input and output.
- ``hook_mlp_out``: what the MLP adds to the residual stream (Gemma: after the
  post-feedforward norm; elsewhere the MLP output itself).

Adding a family is one ``ModelAdapter`` entry in ``ADAPTERS``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

NormKind = Literal["rms", "rms_plus_one", "layernorm"]
HookKind = Literal["input", "output", "normalized"]

INPUT_HOOKS = ("hook_resid_mid", "ln2.hook_normalized", "mlp.hook_in")
OUTPUT_HOOKS = ("mlp.hook_out", "hook_mlp_out")


class UnsupportedModelError(ValueError):
    """The model's architecture has no adapter, or a hook point is unknown."""


@dataclass(frozen=True)
class ModelAdapter:
    family: str
    architectures: tuple[str, ...]  # HF `config.architectures[0]` values served by this adapter
    layers: str  # dotted path from the CausalLM to the ModuleList of blocks
    embed: str  # token embedding; its output is the token node's vector
    final_norm: str
    unembed: str  # lm_head; its input is the final normalised residual the logits read
    ln2: str  # block-relative pre-MLP norm
    mlp: str  # block-relative MLP
    # Gemma's post-feedforward norm sits between the MLP and the residual stream.
    mlp_out_norm: str | None
    # Every block-relative norm on a residual path; their denominators are frozen. Norms that only
    # feed attention scores (Qwen3/Gemma3 q_norm, k_norm) need no freezing: patterns are frozen.
    block_norms: tuple[str, ...]
    norm_kind: NormKind
    # The value path through attention, for the hand-written backward pass (backward.py): the
    # pre-attention norm, the value and output projections, and Gemma's post-attention norm.
    attn_norm: str
    value_proj: str
    attn_out_proj: str
    attn_out_norm: str | None = None
    # GPT-2's Conv1D layers store weights as (in, out), and c_attn packs queries, keys, values.
    conv1d_qkv: bool = False
    position_embed: str | None = None  # GPT-2 learned positions: a constant, not a node

    def value_and_output_weights(self, block: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        """(n_kv_heads x head_dim, d_model) value and (d_model, n_heads x head_dim) output
        projection weights of `block`, as nn.Linear stores them (y = x W^T); views, no copies."""
        w_v, w_o = resolve(block, self.value_proj).weight, resolve(block, self.attn_out_proj).weight
        assert isinstance(w_v, torch.Tensor)
        assert isinstance(w_o, torch.Tensor)
        if self.conv1d_qkv:
            d = w_v.shape[0]
            return w_v[:, 2 * d :].T, w_o.T
        return w_v, w_o

    def hook(self, name: str) -> tuple[str, HookKind]:
        """Block-relative module path and how to read it for a circuit-tracer hook name."""
        table: dict[str, tuple[str, HookKind]] = {
            "hook_resid_mid": (self.ln2, "input"),
            "ln2.hook_normalized": (self.ln2, "normalized"),
            "mlp.hook_in": (self.mlp, "input"),
            "mlp.hook_out": (self.mlp, "output"),
            "hook_mlp_out": (self.mlp_out_norm or self.mlp, "output"),
        }
        if name not in table:
            raise UnsupportedModelError(f"unknown hook point {name!r}; known: {', '.join(table)}")
        return table[name]


def _llama_like(family: str, *architectures: str) -> ModelAdapter:
    return ModelAdapter(
        family=family,
        architectures=architectures,
        layers="model.layers",
        embed="model.embed_tokens",
        final_norm="model.norm",
        unembed="lm_head",
        ln2="post_attention_layernorm",
        mlp="mlp",
        mlp_out_norm=None,
        block_norms=("input_layernorm", "post_attention_layernorm"),
        norm_kind="rms",
        attn_norm="input_layernorm",
        value_proj="self_attn.v_proj",
        attn_out_proj="self_attn.o_proj",
    )


def _gemma(family: str, *architectures: str) -> ModelAdapter:
    return ModelAdapter(
        family=family,
        architectures=architectures,
        layers="model.layers",
        embed="model.embed_tokens",
        final_norm="model.norm",
        unembed="lm_head",
        ln2="pre_feedforward_layernorm",
        mlp="mlp",
        mlp_out_norm="post_feedforward_layernorm",
        block_norms=(
            "input_layernorm",
            "post_attention_layernorm",
            "pre_feedforward_layernorm",
            "post_feedforward_layernorm",
        ),
        norm_kind="rms_plus_one",
        attn_norm="input_layernorm",
        value_proj="self_attn.v_proj",
        attn_out_proj="self_attn.o_proj",
        attn_out_norm="post_attention_layernorm",
    )


ADAPTERS: tuple[ModelAdapter, ...] = (
    _llama_like("llama", "LlamaForCausalLM"),
    _llama_like("qwen2", "Qwen2ForCausalLM"),
    _llama_like("qwen3", "Qwen3ForCausalLM"),
    _gemma("gemma2", "Gemma2ForCausalLM"),
    _gemma("gemma3", "Gemma3ForCausalLM"),
    ModelAdapter(
        family="gpt2",
        architectures=("GPT2LMHeadModel",),
        layers="transformer.h",
        embed="transformer.wte",
        final_norm="transformer.ln_f",
        unembed="lm_head",
        ln2="ln_2",
        mlp="mlp",
        mlp_out_norm=None,
        block_norms=("ln_1", "ln_2"),
        norm_kind="layernorm",
        attn_norm="ln_1",
        value_proj="attn.c_attn",
        attn_out_proj="attn.c_proj",
        conv1d_qkv=True,
        position_embed="transformer.wpe",
    ),
)


def adapter_for(architecture: str) -> ModelAdapter:
    for adapter in ADAPTERS:
        if architecture in adapter.architectures:
            return adapter
    known = ", ".join(a for adapter in ADAPTERS for a in adapter.architectures)
    raise UnsupportedModelError(f"unsupported architecture {architecture!r}; supported: {known}")


def resolve(root: nn.Module, path: str) -> nn.Module:
    """`resolve(model, "model.layers")` -> the submodule at that dotted path."""
    module = root
    for part in path.split("."):
        module = getattr(module, part)
    return module
