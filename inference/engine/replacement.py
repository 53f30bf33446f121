"""The local replacement model: an HF causal LM + transcoders, linearised for one prompt.

`linearised(model)` runs one forward pass in which
- attention patterns are detached (queries and keys enter the family's own eager attention
  detached, so only the value path carries gradient),
- every residual-path norm uses its forward-pass denominator as a constant,
- each MLP output (at the transcoders' output hook) is replaced by a fresh leaf tensor holding
  ``output - skip`` plus the live skip path ``x_in @ W_skip``, so gradient reaches earlier layers
  only through the skip and the leaf's gradient is exactly the gradient at the output hook,
- the token embedding output is a fresh leaf.
The freezes and hooks come from freezing.py, shared with the interventions. The model is then linear in those leaves, and one backward pass from a target direction gives
every direct effect at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedModel

from .adapters import ModelAdapter, adapter_for, resolve
from .freezing import (
    DETACHED_PATTERN,
    Hook,
    PreHook,
    first_tensor_arg,
    frozen_norm,
    installed,
    recording_patterns,
    residual_norms,
)
from .tokenizer_loading import load_tokenizer
from .transcoders import Transcoders, load_transcoders


class ModelLoadError(ValueError):
    """The model folder or hub id cannot be loaded."""


@dataclass
class ReplacementModel:
    """A loaded HF model, its tokenizer (optional for token-id prompts) and transcoders."""

    model: PreTrainedModel
    adapter: ModelAdapter
    transcoders: Transcoders
    tokenizer: Any = None
    name: str = ""

    @classmethod
    def load(
        cls,
        model_path: str | Path,
        transcoders_path: str | Path,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> ReplacementModel:
        """Load from a local folder or a hub id (hub cache), and transcoders (see transcoders.py)."""
        name = str(model_path)
        looks_local = Path(name).is_absolute() or name.startswith((".", "~"))
        if looks_local and not Path(name).expanduser().is_dir():
            raise ModelLoadError(f"model folder not found: {name}")
        try:
            config = AutoConfig.from_pretrained(name)
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"cannot load model config from {name!r}: {exc}") from exc
        # Refuse an unknown architecture or bad transcoders before loading any weights.
        adapter_for((config.architectures or [type(config).__name__])[0])
        transcoders = load_transcoders(transcoders_path)
        model = AutoModelForCausalLM.from_pretrained(name, dtype=dtype, attn_implementation="eager")
        try:
            tokenizer = load_tokenizer(name)
        except (OSError, ValueError, TypeError):
            tokenizer = None  # token-id prompts still work
        return cls.from_parts(model, transcoders, tokenizer, name, device)

    @classmethod
    def from_parts(
        cls,
        model: PreTrainedModel,
        transcoders: Transcoders,
        tokenizer: Any = None,
        name: str = "",
        device: str | torch.device = "cpu",
    ) -> ReplacementModel:
        architecture = (model.config.architectures or [type(model).__name__])[0]
        adapter = adapter_for(architecture)
        nn.Module.to(model, device)  # PreTrainedModel.to's stub rejects a plain device
        model.eval()
        model.requires_grad_(False)  # only the leaves below carry gradient
        dtype = next(model.parameters()).dtype
        replacement = cls(model, adapter, transcoders.to(device, dtype), tokenizer, name)
        transcoders.validate(replacement.n_layers, replacement.d_model)
        return replacement

    @property
    def blocks(self) -> nn.ModuleList:
        layers = resolve(self.model, self.adapter.layers)
        assert isinstance(layers, nn.ModuleList)
        return layers

    @property
    def n_layers(self) -> int:
        return len(self.blocks)

    @property
    def d_model(self) -> int:
        return int(self.text_config.hidden_size)

    @property
    def text_config(self) -> Any:
        config = self.model.config
        return getattr(config, "text_config", None) or config

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def unembed_weight(self) -> torch.Tensor:
        """(vocab, d_model): the lm_head rows the logits read."""
        weight = resolve(self.model, self.adapter.unembed).weight
        assert isinstance(weight, torch.Tensor)
        return weight

    def special_token_ids(self) -> list[int]:
        """Candidates for the prepended special token, in circuit-tracer's order."""
        if self.tokenizer is not None:
            tok = self.tokenizer
            ids = [tok.bos_token_id, tok.pad_token_id, tok.eos_token_id, *tok.all_special_ids]
        else:
            cfg = self.text_config
            ids = [cfg.bos_token_id, cfg.pad_token_id, cfg.eos_token_id]
        flat: list[int] = []
        for i in ids:
            flat.extend(i if isinstance(i, list) else [i])
        return [i for i in flat if i is not None]

    def tokenize(self, prompt: str | list[int] | torch.Tensor) -> torch.Tensor:
        """1-D token ids with a special first token (prepended unless already there)."""
        if isinstance(prompt, str):
            if self.tokenizer is None:
                raise ValueError("this model has no tokenizer; pass token ids")
            ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
            tokens = torch.tensor(ids, dtype=torch.long)
        else:
            tokens = torch.as_tensor(prompt, dtype=torch.long).reshape(-1)
        if tokens.numel() == 0:
            raise ValueError("the prompt is empty")
        vocab = self.unembed_weight.shape[0]
        if int(tokens.min()) < 0 or int(tokens.max()) >= vocab:
            raise ValueError(f"token ids must be in [0, {vocab})")
        special = self.special_token_ids()
        if not special:
            raise ValueError("the model defines no special token to prepend")
        if int(tokens[0]) not in special:
            tokens = torch.cat([torch.tensor([special[0]]), tokens])
        return tokens

    def decode_token(self, token_id: int) -> str:
        if self.tokenizer is None or token_id >= len(self.tokenizer):
            return f"<{token_id}>"
        return str(self.tokenizer.decode([token_id]))


@dataclass
class LinearisedForward:
    """What one linearised forward pass leaves behind (batch dimension 1 kept on graph tensors).

    ``feature_inputs[l]`` (1, n_pos, d): the transcoder input at layer l, in the autograd graph.
    ``output_leaves[l]`` (1, n_pos, d): leaf at the output hook; its grad is the hook's grad.
    ``outputs[l]`` (n_pos, d): the true output-hook value (detached).
    ``embed_leaf`` (1, n_pos, d): the token embedding output, a leaf.
    ``final_resid`` (1, 1, d): the lm_head input (final norm output) at the last position, in
    the graph: only the last position's logits are computed (a 262k-token vocabulary makes the
    others cost as much as the blocks).
    ``logits`` (vocab,): the model's logits at the last position (after any softcap).
    ``patterns[l]`` (heads, n_pos, n_pos): layer l's frozen attention pattern.
    ``norm_scales[(l, path)]`` (n_pos, 1) float32: the constant 1/denominator of the residual-path
    norm at block-relative ``path`` of layer l (layer None: the final norm, model-relative path).
    The last two are what the hand-written backward pass (backward.py) reads.
    """

    feature_inputs: list[torch.Tensor] = field(default_factory=list)
    output_leaves: list[torch.Tensor] = field(default_factory=list)
    outputs: list[torch.Tensor] = field(default_factory=list)
    embed_leaf: torch.Tensor | None = None
    final_resid: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    patterns: list[torch.Tensor] = field(default_factory=list)
    norm_scales: dict[tuple[int | None, str], torch.Tensor] = field(default_factory=dict)


@contextmanager
def linearised(rm: ReplacementModel) -> Iterator[LinearisedForward]:
    """Install the freezes for one forward pass; every hook and patch is removed on exit."""
    adapter, tc = rm.adapter, rm.transcoders
    trace = LinearisedForward(
        feature_inputs=[torch.empty(0)] * rm.n_layers,
        output_leaves=[torch.empty(0)] * rm.n_layers,
        outputs=[torch.empty(0)] * rm.n_layers,
    )
    in_path, in_kind = adapter.hook(tc.feature_input_hook)
    out_path, _ = adapter.hook(tc.feature_output_hook)

    def store_input(layer: int) -> Callable[[torch.Tensor], None]:
        def store(value: torch.Tensor) -> None:
            trace.feature_inputs[layer] = value

        return store

    def input_pre_hook(layer: int) -> PreHook:
        def hook(_m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            trace.feature_inputs[layer] = first_tensor_arg(args, kwargs)

        return hook

    def output_hook(layer: int) -> Hook:
        def hook(_m: nn.Module, _args: Any, output: torch.Tensor) -> torch.Tensor:
            skip_w = tc.skip[layer]
            skip = None
            if skip_w is not None:
                skip = (trace.feature_inputs[layer] @ skip_w.to(output.dtype)).to(output.dtype)
            trace.outputs[layer] = output.detach()[0]
            base = output.detach() if skip is None else (output - skip).detach()
            leaf = base.requires_grad_(True)
            trace.output_leaves[layer] = leaf
            return leaf if skip is None else leaf + skip

        return hook

    def embed_hook(_m: nn.Module, _args: Any, output: torch.Tensor) -> torch.Tensor:
        leaf = output.detach().requires_grad_(True)
        trace.embed_leaf = leaf
        return leaf

    def unembed_pre_hook(_m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        trace.final_resid = first_tensor_arg(args, kwargs)

    def store_scale(layer: int | None, path: str) -> Callable[[torch.Tensor], None]:
        def store(scale: torch.Tensor) -> None:
            trace.norm_scales[(layer, path)] = scale[0]

        return store

    forwards = []
    for layer, path, norm in residual_norms(rm.model, adapter):
        reads_input = in_kind == "normalized" and path == in_path
        capture = store_input(layer) if layer is not None and reads_input else None
        frozen = frozen_norm(
            norm, adapter.norm_kind, torch.Tensor.detach, capture, store_scale(layer, path)
        )
        forwards.append((norm, frozen))
    pre_hooks: list[tuple[nn.Module, PreHook]] = [
        (resolve(rm.model, adapter.unembed), unembed_pre_hook)
    ]
    if in_kind == "input":
        pre_hooks += [(resolve(b, in_path), input_pre_hook(i)) for i, b in enumerate(rm.blocks)]
    hooks: list[tuple[nn.Module, Hook]] = [(resolve(rm.model, adapter.embed), embed_hook)]
    hooks += [(resolve(b, out_path), output_hook(i)) for i, b in enumerate(rm.blocks)]
    with (
        recording_patterns() as patterns,
        installed(
            rm.model,
            attention=DETACHED_PATTERN,
            forwards=forwards,
            pre_hooks=pre_hooks,
            hooks=hooks,
        ),
    ):
        yield trace
    trace.patterns = [patterns[layer] for layer in sorted(patterns)]


def run_linearised(
    rm: ReplacementModel, tokens: torch.Tensor, *, autograd: bool = False
) -> LinearisedForward:
    """One forward pass under `linearised`. The hand-written backward pass (backward.py) needs
    no autograd graph, and a graph would keep every layer's activations and attention pattern
    (67 GB at 8,192 tokens of the Gemma-2-2B shape; benchmarks/long_prompt_plan.py), so none is
    recorded unless ``autograd`` (the tests' independent check of the rows runs autograd)."""
    with torch.set_grad_enabled(autograd), linearised(rm) as trace:
        out = rm.model(input_ids=tokens[None].to(rm.device), use_cache=False, logits_to_keep=1)
    trace.logits = out.logits[0, -1].detach().float()
    return trace


__all__ = [
    "LinearisedForward",
    "ModelLoadError",
    "ReplacementModel",
    "linearised",
    "run_linearised",
]
