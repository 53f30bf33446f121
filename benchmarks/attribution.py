"""Attribution speed and memory on a seeded random model, optionally side by side with
circuit-tracer 0.5.0 (see compare_reference.py for its side venv).

    .venv/bin/python benchmarks/attribution.py [--ctref-python CTREF/bin/python]
        [--d-model 512 --layers 8 --features 8192 --tokens 32 --l0 64 --batch-size 256]
    python benchmarks/attribution.py --preset gemma2-2b --device cuda --dtype bfloat16 \\
        --tokens 32 --max-feature-nodes 8192 --json figures.json [--ctref-python python3 \\
        --ctref-pythonpath /tmp/ct]

Presets: ``small`` (the default) is a Llama-shaped model, d_model 512, 8 layers, vocab 32k,
8192 features per layer, transcoders on ``mlp.hook_in`` -> ``mlp.hook_out``. ``gemma2-2b`` is a
random Gemma-2-2B-shaped Gemma2 model (d_model 2304, 26 layers, 8 heads, 4 KV heads, head_dim
256, MLP 9216, vocab 256k, softcaps as Gemma 2) with 16384 features per layer on
``ln2.hook_normalized`` -> ``hook_mlp_out``, GemmaScope's hook points in circuit-tracer.
``gemma3-270m`` is the real pretrained Gemma-3-270M (18 layers, d_model 640, vocab 262,144)
from the folder ``make gemma3-270m`` caches (benchmarks/gemma3_270m.py), with 1024 seeded
features per layer on the same hook points; its prompt is real text (``TEXT``, repeated to
``--tokens``) after the tokenizer's BOS. ``--d-model``, ``--layers``, ``--features`` and
``--vocab`` override a random preset (MLP width stays 4 x d_model).

The model folder and transcoders are written to a temporary folder (built on ``--device`` and
saved in ``--dtype``); encoder thresholds are calibrated on the prompt so each (layer, position)
has about ``--l0`` active features, like trained transcoders. Reports per-phase wall time and
peak resident memory (sampled every 5 ms) for our engine, on CUDA also the peak of
``torch.cuda.max_memory_allocated`` per phase (reset at each phase; clocks read after a
synchronize), and circuit-tracer's own phase timings and peak memory when its python is given,
with how the two graphs agree. ``--json`` writes every figure (rewritten after each stage, so a
run cut short keeps what it measured).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import torch
import transformers
import yaml
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    Gemma2Config,
    LlamaConfig,
    PretrainedConfig,
    PreTrainedModel,
)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.compare_reference import (  # noqa: E402
    agreement,
    embedding_scale,
    in_circuit_tracers_token_convention,
    run_circuit_tracer,
)
from benchmarks.gemma3_270m import FOLDER as GEMMA3_FOLDER  # noqa: E402
from inference.engine import (  # noqa: E402
    Graph,
    PruneResult,
    ReplacementModel,
    attribute,
    graph_to_json,
    prune,
)
from tests.engine.builders import save_tokenizer  # noqa: E402

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class Preset:
    d_model: int
    layers: int
    features: int
    vocab: int
    input_hook: str
    output_hook: str


PRESETS = {
    "small": Preset(512, 8, 8192, 32768, "mlp.hook_in", "mlp.hook_out"),
    "gemma2-2b": Preset(2304, 26, 16384, 256000, "ln2.hook_normalized", "hook_mlp_out"),
    # The real checkpoint (benchmarks/gemma3_270m.py); only the transcoders are seeded.
    "gemma3-270m": Preset(640, 18, 1024, 262144, "ln2.hook_normalized", "hook_mlp_out"),
}
REAL = {"gemma3-270m": GEMMA3_FOLDER}
# A real model reads real text: the prompt is this text's tokens, repeated to --tokens.
TEXT = (
    "The capital of the state containing Dallas is Austin. Circuit tracing replaces each MLP of "
    "a language model with a transcoder and follows the features that explain the next token. "
)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


class PeakMemory:
    """Samples this process's RSS in a thread; `phase()` records wall time and peak per phase.

    On CUDA it also records ``torch.cuda.max_memory_allocated`` since the phase began (the peak
    counter is reset at each phase) and synchronizes before reading the clock.
    """

    def __init__(self, device: str = "cpu") -> None:
        self.cuda = device.startswith("cuda")
        self.device = device
        self.process = psutil.Process()
        self.peak = 0
        self.rows: list[tuple[str, float, float]] = []
        self.gpu: dict[str, float] = {}  # phase -> peak MiB allocated on the GPU
        self.reserved = 0.0  # peak MiB reserved by the caching allocator, all phases
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.005)

    def gpu_peak(self) -> float:
        """MiB allocated at most since the last call (or phase start); resets the counter."""
        if not self.cuda:
            return float("nan")
        peak = torch.cuda.max_memory_allocated() / 2**20
        self.reserved = max(self.reserved, torch.cuda.max_memory_reserved() / 2**20)
        torch.cuda.reset_peak_memory_stats()
        return peak

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        _sync(self.device)
        self.gpu_peak()
        self.peak = self.process.memory_info().rss
        start = time.perf_counter()
        yield
        _sync(self.device)
        self.rows.append((name, time.perf_counter() - start, self.peak / 2**20))
        if self.cuda:
            self.gpu[name] = max(self.gpu.get(name, 0.0), self.gpu_peak())

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def model_config(args: argparse.Namespace) -> PretrainedConfig:
    common = {
        "vocab_size": args.vocab,
        "hidden_size": args.d_model,
        "intermediate_size": 4 * args.d_model,
        "num_hidden_layers": args.layers,
        "num_attention_heads": 8,
        "num_key_value_heads": 4,
        "bos_token_id": 1,  # save_tokenizer's special ids
        "eos_token_id": 2,
        "pad_token_id": 3,
    }
    config: PretrainedConfig
    if args.preset == "gemma2-2b":
        config = Gemma2Config(
            **common,
            head_dim=256,
            query_pre_attn_scalar=256,
            sliding_window=4096,
            max_position_embeddings=8192,
            final_logit_softcapping=30.0,
            attn_logit_softcapping=50.0,
        )
        config.architectures = ["Gemma2ForCausalLM"]
        return config
    config = LlamaConfig(**common, tie_word_embeddings=False)
    config.architectures = ["LlamaForCausalLM"]
    return config


def _capture_feature_inputs(
    model: PreTrainedModel, args: argparse.Namespace, inputs: dict[int, torch.Tensor]
) -> list[torch.utils.hooks.RemovableHandle]:
    """Hooks that store each layer's transcoder input (batch row 0) in `inputs`, as float32."""
    if PRESETS[args.preset].input_hook == "ln2.hook_normalized":
        # ln2.hook_normalized: x / rms(x) at the pre-feedforward norm, before its (1 + w) scale.
        eps = float(model.config.rms_norm_eps)

        def normalized(i: int) -> Any:
            def hook(_m: nn.Module, a: tuple[torch.Tensor, ...]) -> None:
                x = a[0][0].float()
                inputs[i] = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)

            return hook

        return [
            model.get_submodule(
                f"model.layers.{i}.pre_feedforward_layernorm"
            ).register_forward_pre_hook(normalized(i))
            for i in range(args.layers)
        ]
    # mlp.hook_in: the MLP's input.
    return [
        model.get_submodule(f"model.layers.{i}.mlp").register_forward_pre_hook(
            lambda _m, a, i=i: inputs.__setitem__(i, a[0][0].float())
        )
        for i in range(args.layers)
    ]


def model_folder(folder: Path, args: argparse.Namespace) -> Path:
    return REAL.get(args.preset, folder / "model")


def prompt_tokens(args: argparse.Namespace) -> list[int]:
    """The special first token, then --tokens - 1 ids: random for a random model, TEXT's for a
    real one."""
    if args.preset in REAL:
        tokenizer = AutoTokenizer.from_pretrained(REAL[args.preset])
        ids = tokenizer(TEXT, add_special_tokens=False)["input_ids"]
        ids = (ids * (args.tokens // len(ids) + 1))[: args.tokens - 1]
        return [int(tokenizer.bos_token_id), *ids]
    g = torch.Generator().manual_seed(args.seed)
    return [1, *torch.randint(4, args.vocab, (args.tokens - 1,), generator=g).tolist()]


def build(folder: Path, args: argparse.Namespace, tokens: list[int]) -> None:
    """The model (random: built on args.device, saved in args.dtype; real: loaded from its
    cached folder) and transcoders calibrated on the prompt."""
    dtype = DTYPES[args.dtype]
    torch.manual_seed(args.seed)
    if args.preset in REAL:
        model = AutoModelForCausalLM.from_pretrained(
            REAL[args.preset], attn_implementation="eager", dtype=dtype
        ).eval()
    else:
        with torch.device(args.device):
            model = AutoModelForCausalLM.from_config(
                model_config(args), attn_implementation="eager", dtype=dtype
            ).eval()
        model.save_pretrained(folder / "model")
        save_tokenizer(folder / "model", args.vocab)
    model.to(args.device)  # a no-op unless from_config ignored the device context
    # Feature inputs on the prompt, to calibrate thresholds to the wanted L0.
    inputs: dict[int, torch.Tensor] = {}
    hooks = _capture_feature_inputs(model, args, inputs)
    with torch.no_grad():
        model(input_ids=torch.tensor([tokens], device=args.device), use_cache=False)
    for h in hooks:
        h.remove()
    del model
    tc = folder / "transcoders"
    tc.mkdir()
    g = torch.Generator(device=args.device).manual_seed(args.seed)
    device, d, f = args.device, args.d_model, args.features
    for i in range(args.layers):
        w_enc = torch.randn(f, d, generator=g, device=device) / d**0.5
        pre = inputs.pop(i)[1:] @ w_enc.T
        quantile = 1 - args.l0 / f
        threshold = torch.quantile(pre.flatten()[:1_000_000], quantile).clamp(min=0)
        del pre
        tensors = {
            "W_enc": w_enc,
            "W_dec": torch.randn(f, d, generator=g, device=device) / f**0.5,
            "b_enc": torch.zeros(f),
            "b_dec": torch.zeros(d),
            "activation_function.threshold": threshold.expand(f),
        }
        save_file(
            {k: v.to("cpu", dtype).contiguous() for k, v in tensors.items()},
            str(tc / f"layer_{i}.safetensors"),
        )
    (tc / "config.yaml").write_text(
        yaml.safe_dump(
            {
                "model_kind": "transcoder_set",
                "feature_input_hook": PRESETS[args.preset].input_hook,
                "feature_output_hook": PRESETS[args.preset].output_hook,
                "transcoders": [f"layer_{i}.safetensors" for i in range(args.layers)],
            }
        )
    )
    gc.collect()
    if args.device.startswith("cuda"):
        torch.cuda.empty_cache()


@contextmanager
def _profiled(out: Path | None) -> Iterator[None]:
    """torch.profiler around the block when `out` is given: the operators by self CPU time and
    by total CPU time go to `out`, the top 15 are printed. Without input shapes: grouping the
    events of a few thousand batched backward passes by shape took over 10 GB."""
    if out is None:
        yield
        return
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        yield
    averages = prof.key_averages()
    by_self = averages.table(sort_by="self_cpu_time_total", row_limit=40)
    by_total = averages.table(sort_by="cpu_time_total", row_limit=40)
    out.write_text(f"{by_self}\n\nBy total CPU time:\n{by_total}\n")
    print(averages.table(sort_by="self_cpu_time_total", row_limit=15))


def run_ours(
    folder: Path, tokens: list[int], args: argparse.Namespace
) -> tuple[PeakMemory, Graph, PruneResult, float]:
    """Our run, and the embedding module's own scale (for comparing with circuit-tracer)."""
    meter = PeakMemory(args.device)
    with meter.phase("load"):
        rm = ReplacementModel.load(
            model_folder(folder, args),
            folder / "transcoders",
            device=args.device,
            dtype=DTYPES[args.dtype],
        )
    phase_start: dict[str, float] = {}
    current: list[str] = []

    def on_progress(phase: str, fraction: float) -> None:
        _sync(args.device)  # once per batch: the clock reads finished work
        if phase not in phase_start:
            if current and meter.cuda:  # a new phase: the GPU peak so far was the last one's
                meter.gpu[f"  {current[-1]}"] = meter.gpu_peak()
            current.append(phase)
        phase_start.setdefault(phase, time.perf_counter())
        phase_start[f"{phase}:end"] = time.perf_counter()

    with meter.phase("attribute (total)"), _profiled(args.profile):
        graph = attribute(
            tokens,
            rm,
            batch_size=args.batch_size,
            max_feature_nodes=args.max_feature_nodes,
            on_progress=on_progress,
        )
        _sync(args.device)
        if current and meter.cuda:
            meter.gpu[f"  {current[-1]}"] = meter.gpu_peak()
    if meter.cuda:  # the sub-phases reset the counter: the total is their maximum
        subs = [meter.gpu.get(f"  {p}", 0.0) for p in current]
        meter.gpu["attribute (total)"] = max([meter.gpu["attribute (total)"], *subs])
    for phase in ("forward", "logits", "features"):
        meter.rows.append(
            (f"  {phase}", phase_start[f"{phase}:end"] - phase_start[phase], float("nan"))
        )
    scale = embedding_scale(rm.model, tokens)
    del rm
    gc.collect()
    with meter.phase("prune"):
        pruned = prune(graph)
    with meter.phase("json"):
        json.dumps(graph_to_json(graph, pruned, slug="bench"))
    meter.close()
    meter.rows.append((f"active features: {len(graph.active_features)}", 0.0, 0.0))
    if args.device.startswith("cuda"):
        torch.cuda.empty_cache()  # leave the GPU to circuit-tracer's process
    return meter, graph, pruned, scale


def run_reference(
    folder: Path, tokens: list[int], args: argparse.Namespace, dtype: str
) -> dict[str, Any]:
    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    if args.ctref_pythonpath:
        env["PYTHONPATH"] = args.ctref_pythonpath
    preset = PRESETS[args.preset]
    return run_circuit_tracer(
        args.ctref_python,
        model_folder(folder, args),
        folder / "transcoders",
        "plt",
        tokens,
        args.layers,
        folder / "ref.safetensors",
        in_hook=preset.input_hook,
        out_hook=preset.output_hook,
        batch_size=args.batch_size,
        max_feature_nodes=args.max_feature_nodes,
        threads=torch.get_num_threads(),
        device=args.device,
        dtype=dtype,
        env=env,
        timeout=args.reference_timeout,
    )


def _cpu_seconds(who: int) -> float:
    """User + system CPU seconds of this process or of its waited-for children: beside the wall
    time, the figure a busy shared machine disturbs least."""
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _versions(device: str) -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 1),
    }
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name()
        info["gpu_total_mib"] = round(torch.cuda.get_device_properties(0).total_memory / 2**20)
    return info


def _reference_with_fallback(
    folder: Path, tokens: list[int], args: argparse.Namespace
) -> dict[str, Any]:
    """circuit-tracer in args.reference_dtype (default: args.dtype); float32 if that fails."""
    dtype = args.reference_dtype or args.dtype
    try:
        return run_reference(folder, tokens, args, dtype)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        if dtype == "float32" or isinstance(exc, subprocess.TimeoutExpired):
            raise
        print(f"circuit-tracer failed in {dtype}; retrying in float32:\n{exc}", file=sys.stderr)
        result = run_reference(folder, tokens, args, "float32")
        result["fallback"] = f"{dtype} failed: {str(exc)[-1500:]}"
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", choices=tuple(PRESETS), default="small")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--dtype", choices=tuple(DTYPES), default="float32")
    parser.add_argument("--ctref-python", default=None, help="python that has circuit-tracer")
    parser.add_argument(
        "--ctref-pythonpath", default=None, help="PYTHONPATH for that python (a wheel folder)"
    )
    parser.add_argument("--no-reference", action="store_true", help="skip circuit-tracer")
    parser.add_argument(
        "--reference-dtype", choices=tuple(DTYPES), default=None, help="default: --dtype"
    )
    parser.add_argument("--reference-timeout", type=float, default=None, help="seconds")
    parser.add_argument("--d-model", type=int, default=None, help="default: the preset's")
    parser.add_argument("--layers", type=int, default=None, help="default: the preset's")
    parser.add_argument("--features", type=int, default=None, help="default: the preset's")
    parser.add_argument("--vocab", type=int, default=None, help="default: the preset's")
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--l0", type=int, default=64, help="active features per layer and token")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--max-feature-nodes", type=int, default=None, help="default: all")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="write every figure here")
    parser.add_argument(
        "--profile", type=Path, default=None, help="torch.profiler table of our attribute() here"
    )
    args = parser.parse_args()
    preset = PRESETS[args.preset]
    for name in ("d_model", "layers", "features", "vocab"):
        if getattr(args, name) is None:
            setattr(args, name, getattr(preset, name))
    cuda = args.device == "cuda"
    if args.preset in REAL and not (REAL[args.preset] / "config.json").exists():
        parser.error(
            f"--preset {args.preset}: no checkpoint at {REAL[args.preset]}; run make gemma3-270m"
        )
    tokens = prompt_tokens(args)
    figures: dict[str, Any] = {"settings": vars(args), "versions": _versions(args.device)}

    def save_figures() -> None:
        if args.json is not None:
            args.json.write_text(json.dumps(figures, indent=2, default=str))

    save_figures()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        build(folder, args, tokens)
        _sync(args.device)
        figures["build_s"] = round(time.perf_counter() - start, 2)
        print(
            f"threads={torch.get_num_threads()} d_model={args.d_model} layers={args.layers} "
            f"features={args.features} tokens={args.tokens} batch={args.batch_size}"
        )
        if cuda or args.preset != "small" or args.dtype != "float32" or args.max_feature_nodes:
            print(
                f"preset={args.preset} device={args.device} dtype={args.dtype} "
                f"max_feature_nodes={args.max_feature_nodes} l0={args.l0} "
                f"build={figures['build_s']:.1f}s"
            )
        cpu_before = _cpu_seconds(resource.RUSAGE_SELF)
        meter, graph, pruned, embed_scale = run_ours(folder, tokens, args)
        ours_cpu_s = _cpu_seconds(resource.RUSAGE_SELF) - cpu_before
        print(f"ours: {ours_cpu_s:.1f} CPU s (user + sys, load + attribute + prune + json)")
        gpu_column = f"{'GPU peak MiB':>14s}" if meter.cuda else ""
        print(f"{'ours':28s}{'wall s':>10s}{'peak RSS MiB':>14s}{gpu_column}")
        for name, seconds, mib in meter.rows:
            gpu = f"{meter.gpu[name]:14.0f}" if name in meter.gpu else ""
            print(f"{name:28s}{seconds:10.2f}{mib:14.0f}{gpu}")
        figures["ours"] = {
            "phases": [
                {"phase": name.strip(), "wall_s": round(s, 3)}
                | ({"peak_rss_mib": round(m)} if m == m else {})  # NaN for the sub-phases
                | ({"gpu_peak_mib": round(meter.gpu[name])} if name in meter.gpu else {})
                for name, s, m in meter.rows
                if not name.startswith("active features")
            ],
            "active_features": len(graph.active_features),
            "selected_features": len(graph.selected_features),
            "graph_nodes": graph.n_nodes,
            "pruned_nodes": int(pruned.node_mask.sum()),
            "replacement": pruned.replacement_score,
            "completeness": pruned.completeness_score,
            "cpu_s": round(ours_cpu_s, 2),
        }
        if meter.cuda:
            peak = max(meter.gpu.values())
            figures["ours"]["gpu_peak_mib"] = round(peak)
            figures["ours"]["gpu_peak_below_80GiB"] = peak < 80 * 1024
            figures["ours"]["gpu_peak_reserved_mib"] = round(meter.reserved)
            print(
                f"GPU peak MiB, all phases: allocated {peak:.0f}, reserved {meter.reserved:.0f}; "
                f"allocated below 80 GiB: {peak < 80 * 1024}"
            )
        save_figures()
        if args.ctref_python and not args.no_reference:
            try:
                children_before = _cpu_seconds(resource.RUSAGE_CHILDREN)
                ref = _reference_with_fallback(folder, tokens, args)
                ref["cpu_s"] = round(_cpu_seconds(resource.RUSAGE_CHILDREN) - children_before, 2)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                figures["reference"] = {"error": str(exc)[-3000:]}
                save_figures()
                print(f"circuit-tracer 0.5.0 failed: {exc}")
                sys.exit(1)
            figures["reference"] = ref
            print(f"{'circuit-tracer 0.5.0':28s}  ({ref['device']}, {ref['dtype']})")
            print(f"  {'CPU s (its whole process)':26s}{ref['cpu_s']:10.1f}")
            for key in ("load_s", "attribute_s", "prune_s"):
                print(f"  {key:26s}{ref[key]:10.2f}")
            for phase, seconds in ref.get("phases", {}).items():
                print(f"    {phase:24s}{seconds:10.2f}")
            print(f"  {'peak RSS MiB (process)':26s}{ref['peak_rss_mb']:24.0f}")
            for phase, mib in ref.get("gpu_peak_mib", {}).items():
                print(f"  {'GPU peak MiB ' + phase:26s}{mib:38.0f}")
            if "fallback" in ref:
                print(f"  NOTE: ran in float32: {ref['fallback'].splitlines()[-1]}")
            compared, compared_pruned = graph, pruned
            if abs(embed_scale - 1.0) > 1e-4:  # Gemma-3: token columns in circuit-tracer's terms
                compared = in_circuit_tracers_token_convention(graph, embed_scale)
                compared_pruned = prune(compared)
                print(f"compared with token columns / {embed_scale:.4f} (docs/engine.md)")
            ref_tensors = load_file(str(folder / "ref.safetensors"))
            same = agreement(ref_tensors, compared, compared_pruned)
            same["token_columns_divided_by"] = embed_scale
            same["replacement"] = [compared_pruned.replacement_score, ref["replacement"]]
            same["completeness"] = [compared_pruned.completeness_score, ref["completeness"]]
            figures["agreement"] = same
            rel = same["max_abs_diff_rel"]
            print(
                f"agreement: same node order={same['same_node_order']} "
                f"max|dA|/max|A|={'n/a' if rel is None else f'{rel:.2e}'} "
                f"nodes equal={same['nodes_equal']} ({same['n_nodes']} vs {same['n_nodes_ref']}) "
                f"edges equal={same['edges_equal']} ({same['n_edges']} vs {same['n_edges_ref']})"
            )
            save_figures()


if __name__ == "__main__":
    main()
