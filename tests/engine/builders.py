"""Tiny random models, tokenizers and transcoders for engine tests (CPU, seconds)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from safetensors.torch import save_file
from transformers import (
    AutoModelForCausalLM,
    Gemma2Config,
    Gemma3TextConfig,
    GPT2Config,
    LlamaConfig,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen3Config,
)

VOCAB = 48
D_MODEL = 32
N_LAYERS = 3
D_TRANSCODER = 40
BOS = 1  # special ids are not 0: circuit-tracer skips a falsy id when picking the prepended token


def family_config(family: str, *, bias_free: bool = False) -> PretrainedConfig:
    common: dict[str, Any] = {
        "vocab_size": VOCAB,
        "bos_token_id": BOS,
        "eos_token_id": 2,
        "pad_token_id": 3,
    }
    llama_like: dict[str, Any] = {
        "hidden_size": D_MODEL,
        "intermediate_size": 64,
        "num_hidden_layers": N_LAYERS,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 64,
        "tie_word_embeddings": False,
    }
    config: PretrainedConfig
    if family == "llama":
        config = LlamaConfig(**common, **llama_like, attention_bias=False, mlp_bias=False)
        config.architectures = ["LlamaForCausalLM"]
    elif family == "qwen2":
        config = Qwen2Config(**common, **llama_like)
        config.architectures = ["Qwen2ForCausalLM"]
    elif family == "qwen3":
        config = Qwen3Config(**common, **llama_like, head_dim=8)
        config.architectures = ["Qwen3ForCausalLM"]
    elif family == "gemma2":
        config = Gemma2Config(
            **common,
            **llama_like,
            head_dim=8,
            query_pre_attn_scalar=8,
            sliding_window=4,
            final_logit_softcapping=30.0,
            attn_logit_softcapping=50.0,
        )
        config.architectures = ["Gemma2ForCausalLM"]
    elif family == "gemma3":
        config = Gemma3TextConfig(
            **common, **llama_like, head_dim=8, query_pre_attn_scalar=8, sliding_window=4
        )
        config.architectures = ["Gemma3ForCausalLM"]
    elif family == "gpt2":
        config = GPT2Config(
            **common, n_embd=D_MODEL, n_layer=N_LAYERS, n_head=4, n_positions=64, n_inner=64
        )
        config.architectures = ["GPT2LMHeadModel"]
    else:
        raise ValueError(family)
    if bias_free and family != "llama":
        raise ValueError("only the llama config is bias-free")
    return config


def tiny_model(family: str, *, seed: int = 0) -> PreTrainedModel:
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(family_config(family), attn_implementation="eager")
    # Random norm weights so frozen norm scales matter (HF initialises them to 1 or 0).
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name or "ln_" in name:
                param.add_(0.3 * torch.randn_like(param))
    model.eval()
    return model


def save_tokenizer(folder: Path, vocab_size: int = VOCAB) -> None:
    """A word-level tokenizer: "w5 w9" -> [5, 9]; ids 1, 2, 3 are <bos>, <eos>, <pad>."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"<pad0>": 0, "<bos>": BOS, "<eos>": 2, "<pad>": 3}
    vocab |= {f"w{i}": i for i in range(4, vocab_size)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>"
    )
    fast.save_pretrained(folder)
    # transformers 5 names its own backend class; name the class both 4.x and 5.x load.
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config_path.write_text(json.dumps(config))


def save_model(family: str, folder: Path, *, seed: int = 0) -> Path:
    tiny_model(family, seed=seed).save_pretrained(folder)
    save_tokenizer(folder)
    return folder


def random_plt_params(
    layer: int,
    *,
    d_model: int = D_MODEL,
    d_transcoder: int = D_TRANSCODER,
    jumprelu: bool = False,
    skip: bool = False,
    bias: bool = True,
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed * 100 + layer)
    params = {
        "W_enc": torch.randn(d_transcoder, d_model, generator=g) / d_model**0.5,
        "W_dec": torch.randn(d_transcoder, d_model, generator=g) / d_transcoder**0.5,
        "b_enc": (0.1 * torch.randn(d_transcoder, generator=g))
        if bias
        else torch.zeros(d_transcoder),
        "b_dec": (0.1 * torch.randn(d_model, generator=g)) if bias else torch.zeros(d_model),
    }
    if jumprelu:
        params["activation_function.threshold"] = 0.2 * torch.rand(d_transcoder, generator=g)
    if skip:
        params["W_skip"] = 0.1 * torch.randn(d_model, d_model, generator=g)
    return params


def save_plt(
    folder: Path,
    *,
    n_layers: int = N_LAYERS,
    input_hook: str = "mlp.hook_in",
    output_hook: str = "mlp.hook_out",
    activation: str | None = None,
    k: int | None = None,
    **kwargs: object,
) -> Path:
    """layer_{i}.safetensors files and a config.yaml; returns the config path."""
    folder.mkdir(parents=True, exist_ok=True)
    for layer in range(n_layers):
        save_file(random_plt_params(layer, **kwargs), str(folder / f"layer_{layer}.safetensors"))  # type: ignore[arg-type]
    config: dict[str, object] = {
        "model_kind": "transcoder_set",
        "feature_input_hook": input_hook,
        "feature_output_hook": output_hook,
        "transcoders": [f"layer_{i}.safetensors" for i in range(n_layers)],
    }
    if activation is not None:
        config["activation"] = activation
    if k is not None:
        config["k"] = k
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return folder / "config.yaml"


def save_clt(
    folder: Path,
    *,
    n_layers: int = N_LAYERS,
    d_model: int = D_MODEL,
    d_transcoder: int = D_TRANSCODER,
    jumprelu: bool = False,
    skip: bool = False,
    seed: int = 0,
    input_hook: str = "hook_resid_mid",
    output_hook: str = "hook_mlp_out",
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    for i in range(n_layers):
        enc = {
            f"W_enc_{i}": torch.randn(d_transcoder, d_model, generator=g) / d_model**0.5,
            f"b_enc_{i}": 0.1 * torch.randn(d_transcoder, generator=g),
            f"b_dec_{i}": 0.1 * torch.randn(d_model, generator=g),
        }
        if jumprelu:
            enc[f"threshold_{i}"] = 0.2 * torch.rand(d_transcoder, generator=g)
        if skip:
            enc[f"W_skip_{i}"] = 0.1 * torch.randn(d_model, d_model, generator=g)
        save_file(enc, str(folder / f"W_enc_{i}.safetensors"))
        dec = torch.randn(d_transcoder, n_layers - i, d_model, generator=g) / d_transcoder**0.5
        save_file({f"W_dec_{i}": dec}, str(folder / f"W_dec_{i}.safetensors"))
    config = {
        "model_kind": "cross_layer_transcoder",
        "feature_input_hook": input_hook,
        "feature_output_hook": output_hook,
        "transcoders": ["."],
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return folder / "config.yaml"


def save_gemmascope_npz(folder: Path, *, n_layers: int = N_LAYERS, seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for layer in range(n_layers):
        p = random_plt_params(layer, jumprelu=True, seed=seed)
        np.savez(
            folder / f"layer_{layer}.npz",
            W_enc=p["W_enc"].T.numpy(),  # GemmaScope stores (d_model, d_transcoder)
            W_dec=p["W_dec"].numpy(),
            b_enc=p["b_enc"].numpy(),
            b_dec=p["b_dec"].numpy(),
            threshold=p["activation_function.threshold"].numpy(),
        )
    config = {
        "model_kind": "transcoder_set",
        "feature_input_hook": "ln2.hook_normalized",
        "feature_output_hook": "hook_mlp_out",
        "transcoders": [f"layer_{i}.npz" for i in range(n_layers)],
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return folder / "config.yaml"
