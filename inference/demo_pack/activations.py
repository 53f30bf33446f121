"""Record each layer's MLP input side (hook_resid_mid) and output (mlp.hook_out)."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import cast

import torch
from torch import nn
from transformers import LlamaForCausalLM
from transformers.models.llama.modeling_llama import LlamaDecoderLayer


@contextmanager
def _recording(model: LlamaForCausalLM) -> Iterator[tuple[list[torch.Tensor], list[torch.Tensor]]]:
    """Hooks that store, per layer, the residual stream entering post_attention_layernorm
    (hook_resid_mid: after attention, before the MLP's RMSNorm) and the MLP's output (what the
    block adds to the residual). Always removed on exit."""
    resid_mid: list[torch.Tensor] = []
    mlp_out: list[torch.Tensor] = []
    handles = []
    layers = cast(list[LlamaDecoderLayer], list(model.model.layers))
    for i, layer in enumerate(layers):

        def save_input(_module: nn.Module, args: tuple[torch.Tensor, ...], i: int = i) -> None:
            resid_mid[i] = args[0].detach()

        def save_output(
            _module: nn.Module, _args: tuple[torch.Tensor, ...], out: torch.Tensor, i: int = i
        ) -> None:
            mlp_out[i] = out.detach()

        resid_mid.append(torch.empty(0))
        mlp_out.append(torch.empty(0))
        handles.append(layer.post_attention_layernorm.register_forward_pre_hook(save_input))
        handles.append(layer.mlp.register_forward_hook(save_output))
    try:
        yield resid_mid, mlp_out
    finally:
        for handle in handles:
            handle.remove()


@torch.no_grad()
def mlp_io(
    model: LlamaForCausalLM, rows: torch.Tensor, *, batch_size: int = 256
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run `rows` (n_rows, context) and return (resid_mid, mlp_out), each
    (n_layers, n_rows * context, d_model), tokens in row-major order."""
    n_layers = model.config.num_hidden_layers
    d_model = model.config.hidden_size
    n_tokens = rows.numel()
    resid_all = torch.empty((n_layers, n_tokens, d_model))
    out_all = torch.empty((n_layers, n_tokens, d_model))
    with _recording(model) as (resid_mid, mlp_out):
        for start in range(0, rows.shape[0], batch_size):
            batch = rows[start : start + batch_size]
            # The base model skips the unembedding, which the recording does not need.
            model.model(input_ids=batch)
            lo, hi = start * rows.shape[1], (start + batch.shape[0]) * rows.shape[1]
            for layer in range(n_layers):
                resid_all[layer, lo:hi] = resid_mid[layer].reshape(-1, d_model)
                out_all[layer, lo:hi] = mlp_out[layer].reshape(-1, d_model)
    return resid_all, out_all
