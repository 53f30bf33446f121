"""An independent check of the linearisation: replay a clean forward pass with its attention
patterns, norm denominators and MLP outputs held fixed, and add interventions at the hooks.

It shares nothing with the engine's autograd path: effects are measured as differences of two
plain forward passes, which must equal the adjacency columns exactly because the frozen model
is affine in the interventions.
"""

from __future__ import annotations

import sys
from contextlib import ExitStack
from typing import Any

import torch
from transformers.masking_utils import AttentionMaskInterface, eager_mask
from transformers.modeling_utils import AttentionInterface

from inference.engine.adapters import resolve
from inference.engine.replacement import ReplacementModel

_REPLAY = "engine_test_replay"
_state: dict[str, Any] = {"mode": "record", "qk": {}}


def _replay_attention(
    module: Any, query: Any, key: Any, value: Any, *args: Any, **kwargs: Any
) -> Any:
    if _state["mode"] == "record":
        _state["qk"][id(module)] = (query.detach(), key.detach())
    else:
        query, key = _state["qk"][id(module)]
    eager = sys.modules[type(module).__module__].eager_attention_forward
    return eager(module, query, key, value, *args, **kwargs)


AttentionInterface.register(_REPLAY, _replay_attention)
AttentionMaskInterface.register(_REPLAY, eager_mask)


def _scale(kind: str, x: torch.Tensor, eps: float) -> torch.Tensor:
    if kind == "layernorm":
        return torch.rsqrt(x.var(-1, keepdim=True, unbiased=False) + eps)
    return torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + eps)


class FrozenReplay:
    def __init__(self, rm: ReplacementModel, tokens: torch.Tensor) -> None:
        self.rm = rm
        self.tokens = tokens[None]
        self.clean_norm_inputs: dict[int, torch.Tensor] = {}
        self.clean_outputs: dict[int, torch.Tensor] = {}
        self.clean_inputs: dict[int, torch.Tensor] = {}
        self.clean_embed: torch.Tensor | None = None
        _state["qk"] = {}
        self.clean = self._run("record", None, {})

    def _norms(self) -> list[tuple[torch.nn.Module, str]]:
        adapter = self.rm.adapter
        out = [(resolve(self.rm.model, adapter.final_norm), "final")]
        for block in self.rm.blocks:
            out += [(resolve(block, p), p) for p in adapter.block_norms]
        return out

    def _run(
        self, mode: str, embed_delta: torch.Tensor | None, out_deltas: dict[int, torch.Tensor]
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        rm, adapter, tc = self.rm, self.rm.adapter, self.rm.transcoders
        in_path, in_kind = adapter.hook(tc.feature_input_hook)
        out_path, _ = adapter.hook(tc.feature_output_hook)
        inputs: dict[int, torch.Tensor] = {}
        final: dict[str, torch.Tensor] = {}
        _state["mode"] = mode
        previous = rm.model.config._attn_implementation
        rm.model.config._attn_implementation = _REPLAY
        with ExitStack() as stack, torch.no_grad():
            stack.callback(setattr, rm.model.config, "_attn_implementation", previous)
            for layer, block in enumerate(rm.blocks):
                for path in adapter.block_norms:
                    self._patch_norm(
                        stack,
                        resolve(block, path),
                        mode,
                        layer if path == in_path and in_kind == "normalized" else None,
                        inputs,
                    )
                if in_kind == "input":

                    def pre(_m: Any, args: Any, layer: int = layer) -> None:
                        inputs[layer] = args[0][0]

                    stack.callback(resolve(block, in_path).register_forward_pre_hook(pre).remove)

                def out_hook(
                    _m: Any, _a: Any, output: torch.Tensor, layer: int = layer
                ) -> torch.Tensor:
                    if mode == "record":
                        self.clean_outputs[layer] = output.detach().clone()
                        self.clean_inputs[layer] = inputs[layer].clone()
                        return output
                    new = self.clean_outputs[layer].clone()
                    skip = tc.skip[layer]
                    if skip is not None:
                        new = new + ((inputs[layer] - self.clean_inputs[layer]) @ skip)[None].to(
                            new.dtype
                        )
                    if layer in out_deltas:
                        new = new + out_deltas[layer][None].to(new.dtype)
                    return new

                stack.callback(resolve(block, out_path).register_forward_hook(out_hook).remove)
            self._patch_norm(stack, resolve(rm.model, adapter.final_norm), mode, None, inputs)

            def embed_hook(_m: Any, _a: Any, output: torch.Tensor) -> torch.Tensor:
                if mode == "record":
                    self.clean_embed = output.detach().clone()
                    return output
                assert self.clean_embed is not None
                new = self.clean_embed.clone()
                return new if embed_delta is None else new + embed_delta[None].to(new.dtype)

            stack.callback(
                resolve(rm.model, adapter.embed).register_forward_hook(embed_hook).remove
            )

            def lm_pre(_m: Any, args: Any) -> None:
                final["resid"] = args[0][0]

            stack.callback(
                resolve(rm.model, adapter.unembed).register_forward_pre_hook(lm_pre).remove
            )
            rm.model(input_ids=self.tokens, use_cache=False)
        return [inputs[i].float() for i in range(rm.n_layers)], final["resid"].float()

    def _patch_norm(
        self,
        stack: ExitStack,
        norm: torch.nn.Module,
        mode: str,
        capture: int | None,
        inputs: dict[int, torch.Tensor],
    ) -> None:
        kind = self.rm.adapter.norm_kind
        eps = float(getattr(norm, "variance_epsilon", getattr(norm, "eps", 1e-6)))
        key = id(norm)

        def forward(x: torch.Tensor) -> torch.Tensor:
            if mode == "record":
                self.clean_norm_inputs[key] = x.detach().clone()
            scale = _scale(kind, self.clean_norm_inputs[key], eps)
            weight_param: torch.Tensor = norm.weight  # type: ignore[assignment]
            if kind == "layernorm":
                bias_param: torch.Tensor = norm.bias  # type: ignore[assignment]
                normalized = (x - x.mean(-1, keepdim=True)) * scale
                out = normalized * weight_param + bias_param
            else:
                normalized = x.float() * scale
                weight = (
                    (1.0 + weight_param.float()) if kind == "rms_plus_one" else weight_param.float()
                )
                out = (normalized * weight).to(x.dtype)
            if capture is not None:
                inputs[capture] = normalized[0]
            return out

        norm.forward = forward
        stack.callback(delattr, norm, "forward")

    def effect(
        self,
        embed_delta: torch.Tensor | None = None,
        out_deltas: dict[int, torch.Tensor] | None = None,
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Change of every layer's transcoder input and of the final residual."""
        x_in, resid = self._run("replay", embed_delta, out_deltas or {})
        clean_x, clean_resid = self._run("replay", None, {})
        return [a - b for a, b in zip(x_in, clean_x, strict=True)], resid - clean_resid
