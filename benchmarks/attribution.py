"""Attribution speed and memory on a seeded random Llama-shaped model, optionally side by side
with circuit-tracer 0.5.0 (see compare_reference.py for its side venv).

    .venv/bin/python benchmarks/attribution.py [--ctref-python /tmp/ctref/bin/python]
        [--d-model 512 --layers 8 --features 8192 --tokens 32 --l0 64 --batch-size 256]

The model folder and transcoders are written to a temporary folder; encoder thresholds are
calibrated on the prompt so each (layer, position) has about `--l0` active features, like trained
transcoders. Reports per-phase wall time and peak resident memory (sampled every 5 ms) for our
engine, and circuit-tracer's own phase timings and peak memory when its venv is given.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import torch
import yaml
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, LlamaConfig

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.compare_reference import run_circuit_tracer  # noqa: E402
from inference.engine import ReplacementModel, attribute, graph_to_json, prune  # noqa: E402
from tests.engine.builders import save_tokenizer  # noqa: E402


class PeakMemory:
    """Samples this process's RSS in a thread; `phase()` records wall time and peak per phase."""

    def __init__(self) -> None:
        self.process = psutil.Process()
        self.peak = 0
        self.rows: list[tuple[str, float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.005)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        self.peak = self.process.memory_info().rss
        start = time.perf_counter()
        yield
        self.rows.append((name, time.perf_counter() - start, self.peak / 2**20))

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def build(folder: Path, args: argparse.Namespace, tokens: list[int]) -> None:
    torch.manual_seed(args.seed)
    config = LlamaConfig(
        vocab_size=args.vocab,
        hidden_size=args.d_model,
        intermediate_size=4 * args.d_model,
        num_hidden_layers=args.layers,
        num_attention_heads=8,
        num_key_value_heads=4,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=3,
        tie_word_embeddings=False,
    )
    config.architectures = ["LlamaForCausalLM"]
    model = AutoModelForCausalLM.from_config(config, attn_implementation="eager").eval()
    model.save_pretrained(folder / "model")
    save_tokenizer(folder / "model", args.vocab)
    # Feature inputs (mlp.hook_in) on the prompt, to calibrate thresholds to the wanted L0.
    inputs: dict[int, torch.Tensor] = {}
    hooks = [
        layer.mlp.register_forward_pre_hook(lambda _m, a, i=i: inputs.__setitem__(i, a[0][0]))
        for i, layer in enumerate(model.model.layers)
    ]
    with torch.no_grad():
        model(input_ids=torch.tensor([tokens]))
    for h in hooks:
        h.remove()
    tc = folder / "transcoders"
    tc.mkdir()
    g = torch.Generator().manual_seed(args.seed)
    for i in range(args.layers):
        w_enc = torch.randn(args.features, args.d_model, generator=g) / args.d_model**0.5
        pre = inputs[i][1:] @ w_enc.T
        quantile = 1 - args.l0 / args.features
        threshold = torch.quantile(pre.flatten()[:1_000_000], quantile).clamp(min=0)
        save_file(
            {
                "W_enc": w_enc,
                "W_dec": torch.randn(args.features, args.d_model, generator=g) / args.features**0.5,
                "b_enc": torch.zeros(args.features),
                "b_dec": torch.zeros(args.d_model),
                "activation_function.threshold": threshold.expand(args.features).contiguous(),
            },
            str(tc / f"layer_{i}.safetensors"),
        )
    (tc / "config.yaml").write_text(
        yaml.safe_dump(
            {
                "model_kind": "transcoder_set",
                "feature_input_hook": "mlp.hook_in",
                "feature_output_hook": "mlp.hook_out",
                "transcoders": [f"layer_{i}.safetensors" for i in range(args.layers)],
            }
        )
    )


def run_ours(
    folder: Path, tokens: list[int], args: argparse.Namespace
) -> list[tuple[str, float, float]]:
    meter = PeakMemory()
    with meter.phase("load"):
        rm = ReplacementModel.load(folder / "model", folder / "transcoders")
    phase_start: dict[str, float] = {}

    def on_progress(phase: str, fraction: float) -> None:
        phase_start.setdefault(phase, time.perf_counter())
        phase_start[f"{phase}:end"] = time.perf_counter()

    with meter.phase("attribute (total)"):
        graph = attribute(tokens, rm, batch_size=args.batch_size, on_progress=on_progress)
    for phase in ("forward", "logits", "features"):
        meter.rows.append(
            (f"  {phase}", phase_start[f"{phase}:end"] - phase_start[phase], float("nan"))
        )
    with meter.phase("prune"):
        pruned = prune(graph)
    with meter.phase("json"):
        json.dumps(graph_to_json(graph, pruned, slug="bench"))
    meter.close()
    meter.rows.append((f"active features: {len(graph.active_features)}", 0.0, 0.0))
    return meter.rows


def run_reference(python: str, folder: Path, tokens: list[int], args: argparse.Namespace) -> dict:
    return run_circuit_tracer(
        python,
        folder / "model",
        folder / "transcoders",
        "plt",
        tokens,
        args.layers,
        folder / "ref.safetensors",
        batch_size=args.batch_size,
        threads=torch.get_num_threads(),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ctref-python", default=None)
    parser.add_argument("--d-model", type=int, default=512)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--features", type=int, default=8192)
    parser.add_argument("--vocab", type=int, default=32768)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--l0", type=int, default=64, help="active features per layer and token")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    g = torch.Generator().manual_seed(args.seed)
    tokens = [1, *torch.randint(4, args.vocab, (args.tokens - 1,), generator=g).tolist()]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        build(folder, args, tokens)
        print(
            f"threads={torch.get_num_threads()} d_model={args.d_model} layers={args.layers} "
            f"features={args.features} tokens={args.tokens} batch={args.batch_size}"
        )
        print(f"{'ours':28s}{'wall s':>10s}{'peak RSS MiB':>14s}")
        for name, seconds, mib in run_ours(folder, tokens, args):
            print(f"{name:28s}{seconds:10.2f}{mib:14.0f}")
        if args.ctref_python:
            ref = run_reference(args.ctref_python, folder, tokens, args)
            print(f"{'circuit-tracer 0.5.0':28s}")
            for key in ("load_s", "attribute_s", "prune_s"):
                print(f"  {key:26s}{ref[key]:10.2f}")
            for phase, seconds in ref.get("phases", {}).items():
                print(f"    {phase:24s}{seconds:10.2f}")
            print(f"  {'peak RSS MiB (process)':26s}{ref['peak_rss_mb']:24.0f}")


if __name__ == "__main__":
    main()
