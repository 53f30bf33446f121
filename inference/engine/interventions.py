"""Feature interventions: test a graph's hypothesis by turning features off, up, or to a value.

An intervention names a transcoder feature (layer, position or every position, index) and an
action: ``set`` its activation to a value, ``scale`` it by a factor, or ``ablate`` it (set to 0).
The change of activation ``delta`` moves the MLP output at the transcoders' output hook by
``delta * W_dec[feature]``; a cross-layer (CLT) feature writes that into its own layer and every
later layer, through its decoder slice for each.

`intervene` runs ONE forward pass on a batch of two copies of the prompt. Row 0 is the clean run;
row 1 is the intervened run and reads whatever it must freeze from row 0 at the same layer, which
is always already computed (the batch goes through the layers together):

- ``constrained``: row 1 uses row 0's attention patterns (row 0's queries and keys), row 0's
  denominator in every residual-path norm, and row 0's output at each output hook plus the
  decoder deltas (plus the skip path ``x_in @ W_skip`` recomputed from row 1's input). Deltas are
  taken from the clean activations. This is the attribution graph's own linear model: ablating a
  feature moves each target logit (de-meaned, before any softcap) by exactly minus its edge weight.
- ``free``: row 1 is the real network with the decoder deltas added at the output hooks; later
  features are recomputed from the changed residual stream, and the actions of later
  interventions apply to those recomputed activations. ``freeze_attention=True`` gives row 1 row
  0's attention patterns (circuit-tracer's default), so effects travel through the residual
  stream and MLPs but not through changed attention.

Positions count tokens of the tokenized prompt, the special first token at 0 (as in the graph).
That token has no features in a graph, so it cannot be targeted, and ``position=None`` (every
position) leaves it alone.

Bad input raises `InterventionError`, whose ``field`` names the offending input in the API's
vocabulary (``interventions[2].position``, ``mode``, ``prompt``) for a 400 response.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from contract.params import INTERVENE_MODES

from .adapters import resolve
from .freezing import (
    ROW0_PATTERN,
    Forward,
    Hook,
    PreHook,
    first_row,
    first_tensor_arg,
    frozen_norm,
    installed,
    norm_eps,
    norm_scale,
    normalized,
    residual_norms,
)
from .replacement import ReplacementModel
from .transcoders import JumpReLU, TopK

Action = Literal["set", "scale", "ablate"]
Mode = Literal["constrained", "free"]
ACTIONS: tuple[str, ...] = ("set", "scale", "ablate")
MODES: tuple[str, ...] = INTERVENE_MODES
# Largest |value| the engine accepts for a set value or a scale factor; the API may bound tighter.
MAX_ABS_VALUE = 1e4


class InterventionError(ValueError):
    """Bad intervention input. ``field`` names it (``interventions[2].position``); str(err) is
    ``"<field>: <what is wrong>"``."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


@dataclass(frozen=True)
class Intervention:
    layer: int  # the feature's (source) layer
    position: (
        int | None
    )  # token position (special first token = 0; negative counts from the end); None = every position
    feature: int  # index in the layer's transcoder
    action: Action = "ablate"
    value: float = 0.0  # set: the activation; scale: the factor; ablate: unused

    @classmethod
    def ablate(cls, layer: int, position: int | None, feature: int) -> Intervention:
        return cls(layer, position, feature, "ablate", 0.0)

    @classmethod
    def set_to(cls, layer: int, position: int | None, feature: int, value: float) -> Intervention:
        return cls(layer, position, feature, "set", value)

    @classmethod
    def scale_by(
        cls, layer: int, position: int | None, feature: int, factor: float
    ) -> Intervention:
        return cls(layer, position, feature, "scale", factor)


InterventionLike = Intervention | Mapping[str, Any]


@dataclass
class FeatureActivations:
    """Non-zero feature activations of one run, in the graph's convention (position 0 excluded)."""

    features: torch.Tensor  # (n, 3) int64: layer, position, feature index
    values: torch.Tensor  # (n,) float32

    def get(self, layer: int, position: int, feature: int) -> float:
        key = torch.tensor([layer, position, feature])
        hit = (self.features == key).all(dim=1).nonzero()
        return float(self.values[hit[0, 0]]) if len(hit) else 0.0


@dataclass
class InterventionResult:
    """What `intervene` returns. Logits are the last position's, as the model outputs them (after
    any final softcap), float32 on the CPU."""

    input_tokens: torch.Tensor  # (n_pos,) the tokenized prompt, special first token included
    logits: torch.Tensor  # (vocab,) with the interventions
    clean_logits: torch.Tensor  # (vocab,) without them (same pass, row 0)
    activations: (
        FeatureActivations  # with the interventions; intervened entries hold their new value
    )
    clean_activations: FeatureActivations
    mode: str
    freeze_attention: bool

    @property
    def probabilities(self) -> torch.Tensor:
        return torch.softmax(self.logits, dim=-1)

    @property
    def clean_probabilities(self) -> torch.Tensor:
        return torch.softmax(self.clean_logits, dim=-1)

    def logit_table(
        self,
        top_k: int = 10,
        tokens: Sequence[int] = (),
        decode: Callable[[int], str] | None = None,
    ) -> list[dict[str, Any]]:
        """Before/after rows for a bar chart: the top_k tokens of either run plus `tokens` (e.g.
        the graph's target logits), most probable before the intervention first."""
        before, after = self.clean_probabilities, self.probabilities
        ids = set(torch.topk(before, top_k).indices.tolist())
        ids |= set(torch.topk(after, top_k).indices.tolist()) | {int(t) for t in tokens}
        rows = [
            {
                "token": i,
                "text": decode(i) if decode is not None else None,
                "clean_probability": float(before[i]),
                "probability": float(after[i]),
                "clean_logit": float(self.clean_logits[i]),
                "logit": float(self.logits[i]),
            }
            for i in ids
        ]
        return sorted(rows, key=lambda r: (-r["clean_probability"], r["token"]))


# ---------------------------------------------------------------------------------------------
# Validation


@dataclass(frozen=True)
class _Op:
    """A validated intervention: ``position`` is absolute, or None for every position >= 1."""

    layer: int
    position: int | None
    feature: int
    action: str
    value: float


def _as_int(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InterventionError(field, f"expected an integer, got {value!r}")
    return value


def _as_float(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InterventionError(field, f"expected a number, got {value!r}")
    if not math.isfinite(value) or abs(value) > MAX_ABS_VALUE:
        raise InterventionError(
            field, f"{value!r} is outside [-{MAX_ABS_VALUE:g}, {MAX_ABS_VALUE:g}]"
        )
    return float(value)


def _one(item: Any, where: str, rm: ReplacementModel, n_pos: int) -> _Op:
    if isinstance(item, Intervention):
        raw: Mapping[str, Any] = vars(item)
    elif isinstance(item, Mapping):
        raw = item
        unknown = sorted(set(raw) - {"layer", "position", "feature", "action", "value"})
        if unknown:
            raise InterventionError(f"{where}.{unknown[0]}", "unknown field")
        for key in ("layer", "feature", "action"):
            if key not in raw:
                raise InterventionError(f"{where}.{key}", "missing")
    else:
        raise InterventionError(
            where, f"expected an intervention object, got {type(item).__name__}"
        )
    n_layers, d_transcoder = rm.n_layers, rm.transcoders.d_transcoder
    layer = _as_int(raw["layer"], f"{where}.layer")
    if not 0 <= layer < n_layers:
        raise InterventionError(
            f"{where}.layer", f"{layer} is not a layer of this model (0..{n_layers - 1})"
        )
    feature = _as_int(raw["feature"], f"{where}.feature")
    if not 0 <= feature < d_transcoder:
        raise InterventionError(
            f"{where}.feature", f"{feature} is outside the transcoder (0..{d_transcoder - 1})"
        )
    position = raw.get("position")
    if position is not None:
        given = _as_int(position, f"{where}.position")
        position = given + n_pos if given < 0 else given
        if not 0 <= position < n_pos:
            raise InterventionError(
                f"{where}.position", f"{given} is outside the prompt ({n_pos} tokens)"
            )
        if position == 0:
            raise InterventionError(
                f"{where}.position", "0 is the special first token, which has no features"
            )
    action = raw["action"]
    if action not in ACTIONS:
        raise InterventionError(f"{where}.action", f"{action!r} is not one of {', '.join(ACTIONS)}")
    value = 0.0
    if action != "ablate":
        if "value" not in raw:
            raise InterventionError(f"{where}.value", f"missing (needed by {action!r})")
        value = _as_float(raw["value"], f"{where}.value")
    return _Op(layer, position, feature, str(action), value)


def validate_interventions(
    interventions: Sequence[InterventionLike], rm: ReplacementModel, n_pos: int
) -> list[_Op]:
    """Check every intervention against the model and the prompt length; raise InterventionError."""
    if isinstance(interventions, str | bytes | Mapping) or not isinstance(interventions, Sequence):
        raise InterventionError("interventions", "expected a list of interventions")
    return [_one(item, f"interventions[{i}]", rm, n_pos) for i, item in enumerate(interventions)]


def context_length(rm: ReplacementModel) -> int | None:
    """The model's context (positions it has embeddings or was configured for), if it says."""
    n = getattr(rm.text_config, "max_position_embeddings", None)
    return int(n) if isinstance(n, int) else None


def tokenize_prompt(rm: ReplacementModel, prompt: str | list[int] | torch.Tensor) -> torch.Tensor:
    try:
        tokens = rm.tokenize(prompt)
    except (ValueError, TypeError) as exc:
        raise InterventionError("prompt", str(exc)) from exc
    context = context_length(rm)
    if context is not None and len(tokens) > context:
        raise InterventionError(
            "prompt", f"{len(tokens)} tokens is more than the model's context ({context})"
        )
    return tokens


# ---------------------------------------------------------------------------------------------
# Hooks


def _encode_columns(
    rm: ReplacementModel, layer: int, x: torch.Tensor, features: torch.Tensor
) -> torch.Tensor:
    """Activations of some features: (..., n, d_model) -> (..., n, k), float32."""
    tc = rm.transcoders
    activation = tc.activations[layer]
    if isinstance(activation, TopK):  # whether a feature fires depends on all the others
        return tc.encode(layer, x).float()[..., features]
    w = tc.W_enc[layer][features]
    pre = x.to(w.dtype) @ w.T + tc.b_enc[layer][features]
    if isinstance(activation, JumpReLU):
        return (pre * (pre > activation.threshold[features])).float()
    return activation(pre).float()


@dataclass
class _LayerOps:
    ops: list[_Op]
    features: torch.Tensor  # (k,) distinct features of the ops, on the model's device
    column: dict[int, int]  # feature -> column in `features`
    decoders: torch.Tensor  # (k, n_out_layers, d_model) float32


@dataclass
class InterventionHooks:
    """Hooks that apply interventions to row ``target`` of a batch, reading frozen values from
    row 0. Shared by `intervene` and `steer_generate`.

    ``positions`` are the absolute positions of the tokens in the current forward pass (a KV-cached
    generation step passes one); ``generated`` says whether they are generated tokens, where only
    every-position interventions apply, and only when ``apply_to_generated``.
    """

    rm: ReplacementModel
    ops: list[_Op]
    constrained: bool = False
    freeze_attention: bool = False
    record_activations: bool = False
    apply_to_generated: bool = True
    target: int = 1
    positions: torch.Tensor = field(default_factory=lambda: torch.empty(0, dtype=torch.long))
    generated: bool = False
    inputs: dict[int, torch.Tensor] = field(default_factory=dict)  # layer -> (B, n, d) x_in
    # layer -> (B, n, F) while the layer runs; then `recorded[row]` keeps its non-zero entries
    activations: dict[int, torch.Tensor] = field(default_factory=dict)
    recorded: list[list[tuple[torch.Tensor, torch.Tensor]]] = field(default_factory=list)
    _by_layer: dict[int, _LayerOps] = field(default_factory=dict)
    _pending: dict[int, torch.Tensor] = field(default_factory=dict)  # layer -> (n, d) delta

    def __post_init__(self) -> None:
        grouped: dict[int, list[_Op]] = {}
        for op in self.ops:
            grouped.setdefault(op.layer, []).append(op)
        device = self.rm.device
        for layer, ops in grouped.items():
            distinct = sorted({op.feature for op in ops})
            ids = torch.tensor(distinct, dtype=torch.long)
            decoders = self.rm.transcoders.decoders[layer].rows(ids, device, torch.float32)
            self._by_layer[layer] = _LayerOps(
                ops, ids.to(device), {f: i for i, f in enumerate(distinct)}, decoders
            )

    def begin(self, positions: torch.Tensor, *, generated: bool = False) -> None:
        """Call before each forward pass."""
        self.positions = positions.to(self.rm.device)
        self.generated = generated
        self.inputs.clear()
        self.activations.clear()
        self.recorded = [[], []]
        self._pending.clear()

    def _mask(self, op: _Op) -> torch.Tensor:
        if op.position is not None:
            return self.positions == op.position
        if self.generated and not self.apply_to_generated:
            return torch.zeros_like(self.positions, dtype=torch.bool)
        return self.positions >= 1

    def _apply(self, layer: int) -> None:
        """Interventions at source layer ``layer``: queue their decoder deltas for every layer
        they write to, and record the new values in the activations."""
        plan = self._by_layer.get(layer)
        if plan is None:
            return
        masks = [self._mask(op) for op in plan.ops]
        if not any(bool(m.any()) for m in masks):
            return
        source_row = 0 if self.constrained else self.target
        x = self.inputs[layer][source_row]
        current = _encode_columns(self.rm, layer, x, plan.features)  # (n, k)
        new = current.clone()
        for op, mask in zip(plan.ops, masks, strict=True):
            col = plan.column[op.feature]
            if op.action == "ablate":
                new[mask, col] = 0.0
            elif op.action == "set":
                new[mask, col] = op.value
            else:
                new[mask, col] = new[mask, col] * op.value
        change = new - current
        # (n_out, n, d): change of each output layer's hook value at each position
        deltas = torch.einsum("nk,kod->ond", change, plan.decoders)
        for offset in range(deltas.shape[0]):
            out_layer = layer + offset
            if out_layer in self._pending:
                self._pending[out_layer] = self._pending[out_layer] + deltas[offset]
            else:
                self._pending[out_layer] = deltas[offset]
        if self.record_activations:
            acts = self.activations[layer]
            for op, mask in zip(plan.ops, masks, strict=True):
                col = plan.column[op.feature]
                acts[self.target, mask, op.feature] = new[mask, col]

    def _store_input(self, layer: int, x: torch.Tensor) -> None:
        self.inputs[layer] = x
        if self.record_activations:
            self.activations[layer] = self.rm.transcoders.encode(layer, x).float()

    def _keep_nonzero(self, layer: int) -> None:
        """Replace the layer's dense activations by their non-zero entries (position 0 excluded,
        as in the graph), so a long prompt on a big transcoder set holds one layer at a time."""
        acts = self.activations.pop(layer)
        for row in (0, 1):
            dense = acts[row] * (self.positions >= 1)[:, None]
            pos, feat = dense.nonzero(as_tuple=True)
            absolute = self.positions[pos]
            features = torch.stack([torch.full_like(pos, layer), absolute, feat], 1)
            self.recorded[row].append((features.cpu(), dense[pos, feat].float().cpu()))

    def result_activations(self, row: int) -> FeatureActivations:
        if not self.recorded or not self.recorded[row]:
            return FeatureActivations(torch.zeros(0, 3, dtype=torch.long), torch.zeros(0))
        features, values = zip(*self.recorded[row], strict=True)
        return FeatureActivations(torch.cat(features), torch.cat(values))

    def _output(self, layer: int, output: torch.Tensor) -> torch.Tensor:
        self._apply(layer)
        if self.record_activations:
            self._keep_nonzero(layer)
        delta = self._pending.get(layer)
        if not self.constrained:
            if delta is None:
                return output
            output = output.clone()
            output[self.target] += delta.to(output.dtype)
            return output
        # Constrained: the MLP output is row 0's, plus the live skip path, plus the deltas.
        frozen = output[0].float()
        skip = self.rm.transcoders.skip[layer]
        if skip is not None:
            x = self.inputs[layer]
            frozen = frozen + (x[self.target].float() - x[0].float()) @ skip.float()
        if delta is not None:
            frozen = frozen + delta
        output = output.clone()
        output[self.target] = frozen.to(output.dtype)
        return output

    @contextmanager
    def installed(self) -> Iterator[None]:
        """Register the hooks (and the freezes) on the model; everything is removed on exit."""
        rm, adapter, tc = self.rm, self.rm.adapter, self.rm.transcoders
        in_path, in_kind = adapter.hook(tc.feature_input_hook)
        out_path, _ = adapter.hook(tc.feature_output_hook)
        forwards: list[tuple[nn.Module, Forward]] = []
        if self.constrained:
            forwards = [
                (norm, frozen_norm(norm, adapter.norm_kind, first_row))
                for _, _, norm in residual_norms(rm.model, adapter)
            ]
        pre_hooks: list[tuple[nn.Module, PreHook]] = []
        hooks: list[tuple[nn.Module, Hook]] = []
        for layer, block in enumerate(rm.blocks):
            in_module = resolve(block, in_path)
            if in_kind == "normalized":
                pre_hooks.append((in_module, self._normalized_hook(layer, in_module)))
            else:
                pre_hooks.append((in_module, self._input_hook(layer)))
            hooks.append((resolve(block, out_path), self._output_hook(layer)))
        frozen = self.constrained or self.freeze_attention
        with installed(
            rm.model,
            attention=ROW0_PATTERN if frozen else None,
            forwards=forwards,
            pre_hooks=pre_hooks,
            hooks=hooks,
        ):
            yield

    def _input_hook(self, layer: int) -> PreHook:
        def hook(_m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            self._store_input(layer, first_tensor_arg(args, kwargs))

        return hook

    def _normalized_hook(self, layer: int, norm: nn.Module) -> PreHook:
        kind, eps = self.rm.adapter.norm_kind, norm_eps(norm)

        def hook(_m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            x = first_tensor_arg(args, kwargs)
            scale = norm_scale(x[:1] if self.constrained else x, kind, eps)
            self._store_input(layer, normalized(x, kind, scale))

        return hook

    def _output_hook(self, layer: int) -> Hook:
        def hook(_m: nn.Module, _args: Any, output: torch.Tensor) -> torch.Tensor:
            return self._output(layer, output)

        return hook


@torch.no_grad()
def intervene(
    prompt: str | list[int] | torch.Tensor,
    model: ReplacementModel,
    interventions: Sequence[InterventionLike],
    *,
    mode: Mode = "constrained",
    freeze_attention: bool = True,
    return_activations: bool = True,
) -> InterventionResult:
    """Next-token logits and feature activations with and without `interventions` (see the
    module docstring for the two modes). One forward pass of batch 2."""
    if mode not in MODES:
        raise InterventionError("mode", f"{mode!r} is not one of {', '.join(MODES)}")
    if not isinstance(freeze_attention, bool):
        raise InterventionError("freeze_attention", "expected true or false")
    if mode == "constrained" and not freeze_attention:
        raise InterventionError(
            "freeze_attention", "constrained mode always freezes attention; use mode 'free'"
        )
    tokens = tokenize_prompt(model, prompt)
    ops = validate_interventions(interventions, model, len(tokens))
    hooks = InterventionHooks(
        model,
        ops,
        constrained=mode == "constrained",
        freeze_attention=freeze_attention,
        record_activations=return_activations,
    )
    hooks.begin(torch.arange(len(tokens)))
    with hooks.installed():
        batch = tokens[None].expand(2, -1).to(model.device)
        logits = model.model(input_ids=batch, use_cache=False).logits[:, -1].float().cpu()
    return InterventionResult(
        input_tokens=tokens,
        logits=logits[1],
        clean_logits=logits[0],
        activations=hooks.result_activations(1),
        clean_activations=hooks.result_activations(0),
        mode=mode,
        freeze_attention=freeze_attention,
    )


__all__ = [
    "ACTIONS",
    "MAX_ABS_VALUE",
    "MODES",
    "FeatureActivations",
    "Intervention",
    "InterventionError",
    "InterventionHooks",
    "InterventionResult",
    "intervene",
    "validate_interventions",
]
