"""Per-layer transcoders: hook_resid_mid -> mlp.hook_out, TopK, in the engine's transcoder_set
format (`activation: topk`, `k` in config.yaml).

Per-token TopK rather than JumpReLU or BatchTopK: the input is the raw residual stream, whose
norm varies several-fold between tokens (sentence ends are large). A threshold on
`x @ W_enc.T + b_enc` then lets the large tokens take most features and leaves most tokens with
none, so attribution graphs would be mostly error nodes. TopK gives every token exactly k
features whatever its norm. The engine applies circuit-tracer's TopK rule (the k largest
pre-activations, kept as they are), and `Transcoder.encode` below is that same rule.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from safetensors.torch import save_file
from torch import nn


@dataclass(frozen=True)
class TranscoderConfig:
    n_features: int = 2048
    # Active features per token.
    k: int = 16
    steps: int = 400
    batch_size: int = 1024
    lr: float = 2e-3
    # A feature that has not fired in this many training tokens counts as dead, and the auxiliary
    # loss (below) asks the dead ones to explain what the live ones miss, which revives them.
    dead_after_tokens: int = 100_000
    aux_k: int = 128
    aux_coefficient: float = 1 / 32


class Transcoder(nn.Module):
    """Shapes and names as the engine reads them: W_enc (F, d), W_dec (F, d), b_enc (F,),
    b_dec (d,)."""

    def __init__(self, d_model: int, n_features: int, k: int, generator: torch.Generator) -> None:
        super().__init__()
        self.k = k
        encoder = torch.randn(n_features, d_model, generator=generator)
        self.W_enc = nn.Parameter(encoder / encoder.norm(dim=-1, keepdim=True))
        self.b_enc = nn.Parameter(torch.zeros(n_features))
        decoder = torch.randn(n_features, d_model, generator=generator)
        self.W_dec = nn.Parameter(decoder / decoder.norm(dim=-1, keepdim=True))
        self.b_dec = nn.Parameter(torch.zeros(d_model))

    def pre_activation(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.W_enc.T + self.b_enc  # (n_tokens, F)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """TopK: each token's k largest pre-activations as they are, 0 elsewhere."""
        pre = self.pre_activation(x)
        values, indices = pre.topk(self.k, dim=-1)
        return torch.zeros_like(pre).scatter(-1, indices, values)

    def decode(self, acts: torch.Tensor) -> torch.Tensor:
        return acts @ self.W_dec + self.b_dec  # (n_tokens, d_model)


@dataclass(frozen=True)
class TranscoderStats:
    fvu: float
    mean_l0: float
    dead_fraction: float


def train_transcoder(
    resid_mid: torch.Tensor,
    mlp_out: torch.Tensor,
    config: TranscoderConfig,
    *,
    seed: int,
    on_step: Callable[[int, float], None] | None = None,
) -> Transcoder:
    """Fit one layer's transcoder on paired activations (n_tokens, d_model) and return it in raw
    activation units (the input/output normalisation used in training is folded into the
    weights, so the engine applies it to the residual stream as is)."""
    generator = torch.Generator().manual_seed(seed)
    # Train on unit-RMS activations so one learning rate suits every layer.
    x_scale = resid_mid.pow(2).mean().sqrt()
    y_scale = mlp_out.pow(2).mean().sqrt()
    x_all, y_all = resid_mid / x_scale, mlp_out / y_scale
    y_variance = (y_all - y_all.mean(0)).pow(2).sum(-1).mean()

    model = Transcoder(resid_mid.shape[1], config.n_features, config.k, generator)
    with torch.no_grad():
        model.b_dec.copy_(y_all.mean(0))
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    tokens_since_fired = torch.zeros(config.n_features)
    for step in range(config.steps):
        # Linear decay over the last fifth.
        decay_start = int(config.steps * 0.8)
        scale = min(1.0, (config.steps - step) / max(1, config.steps - decay_start))
        for group in optimizer.param_groups:
            group["lr"] = config.lr * scale
        idx = torch.randint(0, x_all.shape[0], (config.batch_size,), generator=generator)
        x, y = x_all[idx], y_all[idx]
        pre = model.pre_activation(x)
        values, indices = pre.topk(config.k, dim=-1)
        acts = torch.zeros_like(pre).scatter(-1, indices, values)
        recon = model.decode(acts)
        residual = y - recon
        loss = residual.pow(2).sum(-1).mean() / y_variance

        fired = torch.zeros(config.n_features, dtype=torch.bool)
        fired[indices.flatten()] = True
        tokens_since_fired = torch.where(fired, 0.0, tokens_since_fired + config.batch_size)
        dead = tokens_since_fired >= config.dead_after_tokens
        if dead.any():
            dead_pre = pre[:, dead]
            k_aux = min(config.aux_k, int(dead.sum()))
            aux_values, aux_indices = dead_pre.topk(k_aux, dim=-1)
            aux_acts = torch.zeros_like(dead_pre).scatter(-1, aux_indices, aux_values)
            aux_recon = aux_acts @ model.W_dec[dead]
            target = residual.detach()
            aux_loss = (aux_recon - target).pow(2).sum(-1).mean() / target.pow(2).sum(-1).mean()
            loss = loss + config.aux_coefficient * aux_loss

        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            # Unit-norm decoder rows make activation sizes comparable across features.
            model.W_dec.div_(model.W_dec.norm(dim=-1, keepdim=True))
        if on_step is not None:
            on_step(step, loss.item())

    with torch.no_grad():
        model.W_enc.div_(x_scale)
        model.W_dec.mul_(y_scale)
        model.b_dec.mul_(y_scale)
    return model


@torch.no_grad()
def transcoder_stats(
    model: Transcoder, resid_mid: torch.Tensor, mlp_out: torch.Tensor, *, batch_size: int = 8192
) -> TranscoderStats:
    """FVU, mean L0 (positive activations per token) and dead fraction on (held-out) activations."""
    squared_error = 0.0
    n_active = 0.0
    ever_active = torch.zeros(model.W_enc.shape[0], dtype=torch.bool)
    for start in range(0, resid_mid.shape[0], batch_size):
        acts = model.encode(resid_mid[start : start + batch_size])
        recon = model.decode(acts)
        squared_error += float((recon - mlp_out[start : start + batch_size]).pow(2).sum())
        active = acts > 0
        n_active += float(active.sum())
        ever_active |= active.any(0)
    variance = float((mlp_out - mlp_out.mean(0)).pow(2).sum())
    return TranscoderStats(
        fvu=squared_error / variance,
        mean_l0=n_active / resid_mid.shape[0],
        dead_fraction=float((~ever_active).float().mean()),
    )


def save_transcoder_set(transcoders: list[Transcoder], folder: Path) -> None:
    """Write config.yaml and layer_{i}.safetensors in the engine's transcoder_set format."""
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for layer, model in enumerate(transcoders):
        name = f"layer_{layer}.safetensors"
        tensors = {
            "W_enc": model.W_enc.detach().contiguous(),
            "W_dec": model.W_dec.detach().contiguous(),
            "b_enc": model.b_enc.detach().contiguous(),
            "b_dec": model.b_dec.detach().contiguous(),
        }
        save_file(tensors, folder / name)
        names.append(name)
    config = {
        "model_kind": "transcoder_set",
        "feature_input_hook": "hook_resid_mid",
        "feature_output_hook": "mlp.hook_out",
        "transcoders": names,
        "activation": "topk",
        "k": transcoders[0].k,
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
