"""The committed demo pack: loads through the standard loaders, reproduces its recorded
completions, and its transcoders and dashboards have the documented shapes."""

import functools
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import torch
import yaml
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

from inference.demo_pack.activations import mlp_io
from inference.demo_pack.card import greedy_completion
from inference.demo_pack.train_transcoders import Transcoder
from inference.engine import read_layer

PACK = Path(__file__).resolve().parents[2] / "inference" / "packs" / "demo"
MAX_PACK_BYTES = 25 * 1024 * 1024

EXAMPLE = {
    "type": "object",
    "required": ["tokens", "tokens_acts_list", "train_token_ind", "is_repeated_datapoint"],
    "properties": {
        "tokens": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "tokens_acts_list": {"type": "array", "items": {"type": "number"}, "minItems": 1},
        "train_token_ind": {"type": "integer", "minimum": 0},
        "is_repeated_datapoint": {"type": "boolean"},
    },
}
FEATURE_SCHEMA = {
    "type": "object",
    "required": [
        "index",
        "examples_quantiles",
        "top_logits",
        "bottom_logits",
        "act_min",
        "act_max",
        "histogram",
        "activation_frequency",
    ],
    "properties": {
        "index": {"type": "integer", "minimum": 0},
        "transcoder_id": {"type": "string"},
        "examples_quantiles": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["quantile_name", "examples"],
                "properties": {
                    "quantile_name": {"type": "string"},
                    "examples": {"type": "array", "items": EXAMPLE},
                },
            },
        },
        "top_logits": {"type": "array", "items": {"type": "string"}, "minItems": 10},
        "bottom_logits": {"type": "array", "items": {"type": "string"}, "minItems": 10},
        "act_min": {"type": "number"},
        "act_max": {"type": "number"},
        "quantile_values": {"type": "array", "items": {"type": "number"}},
        "histogram": {
            "type": "object",
            "required": ["edges", "counts"],
            "properties": {
                "edges": {"type": "array", "items": {"type": "number"}},
                "counts": {"type": "array", "items": {"type": "integer"}},
            },
        },
        "activation_frequency": {"type": "number", "minimum": 0, "maximum": 1},
    },
}


@functools.cache
def _model() -> LlamaForCausalLM:
    model = AutoModelForCausalLM.from_pretrained(PACK / "model")
    assert isinstance(model, LlamaForCausalLM)
    return model


@functools.cache
def _tokenizer() -> Any:
    return AutoTokenizer.from_pretrained(PACK / "model")


def _transcoder_config() -> dict[str, Any]:
    config = yaml.safe_load((PACK / "transcoders" / "config.yaml").read_text())
    assert isinstance(config, dict)
    return config


def _load_transcoder(name: str) -> Transcoder:
    tensors = load_file(PACK / "transcoders" / name)
    n_features, d_model = tensors["W_enc"].shape
    transcoder = Transcoder(d_model, n_features, _transcoder_config()["k"], torch.Generator())
    transcoder.load_state_dict(
        {
            "W_enc": tensors["W_enc"],
            "W_dec": tensors["W_dec"],
            "b_enc": tensors["b_enc"],
            "b_dec": tensors["b_dec"],
        }
    )
    return transcoder


def test_the_pack_fits_the_size_budget() -> None:
    size = sum(p.stat().st_size for p in PACK.rglob("*") if p.is_file())
    assert size <= MAX_PACK_BYTES, f"{size / 2**20:.1f} MiB"


def test_the_tokenizer_starts_every_prompt_with_bos() -> None:
    tokenizer = _tokenizer()
    assert tokenizer("The capital of France is").input_ids[0] == tokenizer.bos_token_id


def test_the_model_reproduces_its_recorded_sample_completions() -> None:
    samples = json.loads((PACK / "prompts.json").read_text())
    families = [s["family"] for s in samples]
    assert len(families) == len(set(families)), "one prompt per family"
    for sample in samples:
        completion = greedy_completion(_model(), _tokenizer(), sample["prompt"])
        assert completion == sample["completion"], sample


def test_transcoder_files_have_the_documented_shapes() -> None:
    config = _transcoder_config()
    assert config["model_kind"] == "transcoder_set"
    assert config["feature_input_hook"] == "hook_resid_mid"
    assert config["feature_output_hook"] == "mlp.hook_out"
    assert config["activation"] == "topk"
    assert 0 < config["k"] < 64
    d_model = _model().config.hidden_size
    assert config["transcoders"] == [
        f"layer_{i}.safetensors" for i in range(_model().config.num_hidden_layers)
    ]
    for name in config["transcoders"]:
        tensors = load_file(PACK / "transcoders" / name)
        n_features = tensors["W_enc"].shape[0]
        shapes = {key: tuple(value.shape) for key, value in tensors.items()}
        assert shapes == {
            "W_enc": (n_features, d_model),
            "W_dec": (n_features, d_model),
            "b_enc": (n_features,),
            "b_dec": (d_model,),
        }
        assert all(value.dtype == torch.float32 for value in tensors.values())


def test_transcoders_reconstruct_the_mlp_output_from_resid_mid() -> None:
    tokenizer = _tokenizer()
    text = "The capital of the state containing Dallas is Austin. 12 + 30 = 42."
    rows = torch.tensor([tokenizer(text).input_ids])
    resid_mid, mlp_out = mlp_io(_model(), rows)
    for layer, name in enumerate(_transcoder_config()["transcoders"]):
        transcoder = _load_transcoder(name)
        with torch.no_grad():
            recon = transcoder.decode(transcoder.encode(resid_mid[layer, 1:]))
        target = mlp_out[layer, 1:]
        fvu = (recon - target).pow(2).sum() / (target - target.mean(0)).pow(2).sum()
        assert fvu < 0.3, (layer, float(fvu))


@pytest.mark.parametrize("layer", range(4))
def test_dashboards_match_the_feature_schema(layer: int) -> None:
    n_features = load_file(PACK / "transcoders" / f"layer_{layer}.safetensors")["W_enc"].shape[0]
    features = read_layer(PACK / "features" / f"layer_{layer}.jsonl.gz")
    assert [f["index"] for f in features] == list(range(n_features))
    validator = jsonschema.Draft202012Validator(FEATURE_SCHEMA)
    # The schema validator is slow in Python; every 16th feature keeps the test fast, and the
    # checks below still run on every feature.
    for feature in features[::16]:
        validator.validate(feature)
    for feature in features:
        examples = [e for q in feature["examples_quantiles"] for e in q["examples"]]
        for example in examples:
            assert len(example["tokens"]) == len(example["tokens_acts_list"])
            assert example["train_token_ind"] < len(example["tokens"])
        assert len(feature["histogram"]["edges"]) == len(feature["histogram"]["counts"]) + 1
        if feature["activation_frequency"] == 0:
            assert examples == []
        else:
            assert feature["examples_quantiles"][0]["quantile_name"] == "Top activations"
            assert examples
