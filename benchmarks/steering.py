"""Intervention and steering speed: the engine calls behind ``/api/v1/intervene`` and ``/steer``.

    .venv/bin/python benchmarks/steering.py [--threads 1]    # CPU: demo pack + a 512x8 random Llama
    .venv/bin/python benchmarks/steering.py --device cuda --preset 2b   # on a GPU (bf16 by default)

1. Round trip on the demo pack (``inference/packs/demo``; skipped with a note if it is not built):
   ``intervene`` in constrained and free mode with three interventions on a graph-sized prompt,
   and a ``steer_generate`` of ``--tokens`` tokens; medians over ``--runs`` warm calls. The job
   path (queue, worker, storage) adds its own overhead on top: see benchmarks/jobs.py.
2. Steered generation against plain HF ``generate`` on a seeded random Llama-shaped model
   (``--preset small``: d_model 512, 8 layers, vocab 32k, 4096 features; ``--preset 2b``:
   Gemma-2-2B-shaped, d_model 2304, 26 layers, vocab 256k, 16384 features, meant for a GPU).
   Both greedy, ``--tokens`` new tokens with the same attention implementation (eager, as the
   engine loads models). Reported: plain ``generate`` at batch 1 and 2, and ``steer_generate``
   (one batch of 2: default + steered) with one every-position intervention applied to the
   generated tokens, as tokens per second per continuation.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, Gemma2Config, LlamaConfig, PretrainedConfig

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from inference.engine import (  # noqa: E402
    Intervention,
    ReplacementModel,
    intervene,
    steer_generate,
)
from inference.engine.transcoders import DecoderRows, JumpReLU, Transcoders  # noqa: E402

DEMO = ROOT / "inference" / "packs" / "demo"


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def median_ms(fn: Callable[[], Any], runs: int, device: str, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def demo_round_trip(args: argparse.Namespace) -> dict[str, Any]:
    if not (DEMO / "model").is_dir() or not (DEMO / "transcoders").is_dir():
        return {"skipped": f"no demo pack at {DEMO} (build it: python -m inference.demo_pack)"}
    start = time.perf_counter()
    rm = ReplacementModel.load(DEMO / "model", DEMO / "transcoders", device=args.device)
    load_s = time.perf_counter() - start
    prompt = "The capital of the state containing Dallas is"
    clean = intervene(prompt, rm, [], mode="constrained").clean_activations
    strongest = clean.values.argsort(descending=True)[:3]
    (layer, pos, feature), (l1, p1, f1), (l2, p2, f2) = clean.features[strongest].tolist()
    interventions = [
        Intervention.ablate(layer, pos, feature),
        Intervention.scale_by(l1, p1, f1, 2.0),
        Intervention.set_to(l2, p2, f2, 5.0),
    ]
    steer = [Intervention.set_to(layer, None, feature, 5.0)]
    n_pos = len(rm.tokenize(prompt))
    n_tokens = max(1, min(args.tokens, rm.text_config.max_position_embeddings - n_pos))
    return {
        "model": str(DEMO.relative_to(ROOT)),
        "load_s": round(load_s, 2),
        "prompt_tokens": n_pos,
        "intervene_constrained_ms": round(
            median_ms(lambda: intervene(prompt, rm, interventions), args.runs, args.device), 2
        ),
        "intervene_free_ms": round(
            median_ms(
                lambda: intervene(prompt, rm, interventions, mode="free"), args.runs, args.device
            ),
            2,
        ),
        f"steer_generate_{n_tokens}_tokens_ms": round(
            median_ms(
                lambda: steer_generate(prompt, rm, steer, n_tokens=n_tokens, seed=0),
                max(3, args.runs // 4),
                args.device,
            ),
            1,
        ),
    }


def _config(preset: str) -> PretrainedConfig:
    if preset == "2b":
        config: PretrainedConfig = Gemma2Config(
            vocab_size=256000,
            hidden_size=2304,
            intermediate_size=9216,
            num_hidden_layers=26,
            num_attention_heads=8,
            num_key_value_heads=4,
            head_dim=256,
            max_position_embeddings=8192,
            bos_token_id=2,
            eos_token_id=None,
            pad_token_id=0,
        )
        config.architectures = ["Gemma2ForCausalLM"]
        return config
    config = LlamaConfig(
        vocab_size=32768,
        hidden_size=512,
        intermediate_size=2048,
        num_hidden_layers=8,
        num_attention_heads=8,
        num_key_value_heads=4,
        max_position_embeddings=2048,
        bos_token_id=1,
        eos_token_id=None,
        pad_token_id=3,
        tie_word_embeddings=False,
    )
    config.architectures = ["LlamaForCausalLM"]
    return config


def random_transcoders(
    n_layers: int, d_model: int, n_features: int, device: str, dtype: torch.dtype
) -> Transcoders:
    g = torch.Generator().manual_seed(0)

    def randn(*shape: int, scale: float) -> torch.Tensor:
        return (torch.randn(*shape, generator=g) * scale).to(device, dtype)

    return Transcoders(
        W_enc=[randn(n_features, d_model, scale=d_model**-0.5) for _ in range(n_layers)],
        b_enc=[randn(n_features, scale=0.1) for _ in range(n_layers)],
        b_dec=[randn(d_model, scale=0.1) for _ in range(n_layers)],
        activations=[
            JumpReLU(torch.full((n_features,), 0.5, device=device, dtype=dtype))
            for _ in range(n_layers)
        ],
        decoders=[
            DecoderRows(randn(n_features, d_model, scale=n_features**-0.5)) for _ in range(n_layers)
        ],
        skip=[None] * n_layers,
        feature_input_hook="mlp.hook_in",
        feature_output_hook="mlp.hook_out",
    )


def generation_speed(args: argparse.Namespace) -> dict[str, Any]:
    dtype = getattr(torch, args.dtype or ("bfloat16" if args.device != "cpu" else "float32"))
    config = _config(args.preset)
    torch.manual_seed(0)
    with torch.device(args.device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation="eager")
    model.generation_config.eos_token_id = None
    n_features = 16384 if args.preset == "2b" else 4096
    tc = random_transcoders(
        config.num_hidden_layers, config.hidden_size, n_features, args.device, dtype
    )
    rm = ReplacementModel.from_parts(model, tc, device=args.device)
    prompt = torch.randint(4, config.vocab_size, (16,), generator=torch.Generator().manual_seed(1))
    tokens = rm.tokenize(prompt)
    steer = [Intervention.set_to(config.num_hidden_layers // 2, None, 7, 10.0)]
    n = args.tokens
    runs = max(3, args.runs // 4)

    def plain(batch: int) -> Callable[[], Any]:
        ids = tokens[None].expand(batch, -1).to(args.device)
        kwargs = {"max_new_tokens": n, "min_new_tokens": n, "do_sample": False}
        return lambda: model.generate(ids, attention_mask=torch.ones_like(ids), **kwargs)

    def steered() -> None:
        out = steer_generate(tokens, rm, steer, n_tokens=n, temperature=0.0, seed=0)
        assert len(out.steered.tokens) == n

    plain1 = median_ms(plain(1), runs, args.device, warmup=1)
    plain2 = median_ms(plain(2), runs, args.device, warmup=1)
    steer_ms = median_ms(steered, runs, args.device, warmup=1)
    return {
        "preset": args.preset,
        "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
        "dtype": str(dtype).removeprefix("torch."),
        "prompt_tokens": len(tokens),
        "new_tokens": n,
        "generate_batch1_tok_s": round(n / plain1 * 1000, 1),
        "generate_batch2_tok_s_per_row": round(n / plain2 * 1000, 1),
        "steer_generate_tok_s_per_row": round(n / steer_ms * 1000, 1),
        "steer_vs_generate_batch1": round(plain1 / steer_ms, 2),
        "steer_vs_generate_batch2": round(plain2 / steer_ms, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--dtype", default=None, help="float32 | bfloat16 (default: fp32 on CPU)")
    parser.add_argument("--preset", choices=("small", "2b"), default="small")
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--skip-demo", action="store_true")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: torch's). On a shared, loaded machine use 1: threads "
        "that wait on each other behind other processes can be 100x slower",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    report: dict[str, Any] = {
        "device": args.device,
        "torch_threads": torch.get_num_threads(),
        "load_average_1m": round(os.getloadavg()[0], 1),
        "cpu_count": os.cpu_count(),
    }
    if not args.skip_demo:
        report["demo_round_trip"] = demo_round_trip(args)
    report["generation"] = generation_speed(args)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
