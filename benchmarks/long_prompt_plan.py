"""What a long prompt needs on the Gemma-2-2B shape, by the memory planner: the table in docs/engine.md.

    .venv/bin/python benchmarks/long_prompt_plan.py [--json benchmarks/results/cpu-...-long-prompt-plan.json]

No machine here can run the Gemma-2-2B shape at thousands of tokens, so the planner's arithmetic
(`estimate`, inference/engine/memory_plan.py) gives the figures, on the shape's numbers (26
layers, d_model 2304, 8 heads of 256, 4 key/value heads, 16,384 features per layer, bfloat16,
L0 64: ``A_l = 64 n``; a layer's densest position taken as 150 features, as in issue #19; batch
32, 10 logits). One input of the estimate is measured per prompt, not derived: the bytes the
linearised forward pass keeps for autograd (``forward``). It is measured here (`measure`) on
a model of that shape with ``--layers`` layers (a small vocabulary: only the last position's
logits are computed, so the vocabulary adds no per-token bytes) at a few prompt lengths, fitted
per layer as ``a + b n + c n²`` (the n² is attention's), checked against one more length, and
scaled to 26 layers. Weights: Gemma-2-2B's 2.61B parameters and 26 encoders in bfloat16.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GB = 1e9
LAYERS, D_MODEL, HEADS, HEAD_DIM, KV_HEADS = 26, 2304, 8, 256, 4
FEATURES, L0, DENSEST, BATCH, LOGITS = 16_384, 64, 150, 32, 10
PARAMETERS = 2_614_341_888  # Gemma-2-2B's, embedding included
BF16 = 2


def measured_forward(layers: int, lengths: list[int], check: int) -> dict[str, Any]:
    """The forward pass's kept bytes per layer at each length, on the shape with `layers`
    layers; the per-layer fit a + b n + c n^2 and its error at `check` tokens."""
    import torch

    from benchmarks.attribution import build, prompt_tokens
    from inference.engine import ReplacementModel
    from inference.engine.memory_plan import measure

    build_args = argparse.Namespace(
        preset="gemma2-2b", device="cpu", dtype="bfloat16", seed=0, vocab=4096,
        d_model=D_MODEL, layers=layers, features=FEATURES, l0=L0, tokens=max([*lengths, check]),
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        tokens = prompt_tokens(build_args)
        build(folder, build_args, tokens)
        rm = ReplacementModel.load(folder / "model", folder / "transcoders")
        per_layer = {
            n: measure(rm, torch.tensor(tokens[:n])).forward_bytes / layers
            for n in [*lengths, check]
        }
    xs = torch.tensor([[1.0, n, n * n] for n in lengths], dtype=torch.float64)
    ys = torch.tensor([per_layer[n] for n in lengths], dtype=torch.float64)
    a, b, c = torch.linalg.lstsq(xs, ys[:, None]).solution[:, 0].tolist()
    predicted = a + b * check + c * check * check
    return {
        "layers": layers,
        "per_layer_bytes": per_layer,
        "fit": {"a": a, "b": b, "c": c},
        "check_tokens": check,
        "check_error": predicted / per_layer[check] - 1,
    }


def table(fit: dict[str, float], lengths: list[int], nodes: list[int]) -> list[dict[str, Any]]:
    from inference.engine.memory_plan import (
        LAYOUTS,
        RANKING_ENTRIES,
        ActiveFeatures,
        Layout,
        Shapes,
        estimate,
    )

    shapes = Shapes(
        n_layers=LAYERS, d_model=D_MODEL, n_heads=HEADS, attn_width=HEADS * HEAD_DIM,
        value_width=KV_HEADS * HEAD_DIM, out_layers=(1,) * LAYERS, dtype_bytes=BF16,
        weight_bytes=(PARAMETERS + LAYERS * FEATURES * D_MODEL) * BF16, on_host=False,
    )  # fmt: skip
    rows = []
    for n in lengths:
        forward = int(LAYERS * (fit["a"] + fit["b"] * n + fit["c"] * n * n))
        active = ActiveFeatures(n, (L0 * n,) * LAYERS, (DENSEST,) * LAYERS, forward)
        for k in nodes:
            row: dict[str, Any] = {"tokens": n, "max_feature_nodes": k, "forward_gb": forward / GB}
            sparse = [Layout(hold, False, RANKING_ENTRIES) for hold in (True, False)]
            for layout in [*LAYOUTS, *sparse]:
                plan = estimate(
                    shapes, active, batch_size=BATCH, max_feature_nodes=k, n_logits=LOGITS,
                    layout=layout,
                )  # fmt: skip
                name = ("held" if layout.hold_decoder_blocks else "per-batch") + (
                    "+offloaded" if layout.offload_rows else ""
                )
                if layout.ranking_entries is not None:
                    name += f"+sparse-{layout.ranking_entries}"
                row[name] = {"device_gb": plan.device_total / GB, "host_gb": plan.host_peak / GB}
            rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, default=2, help="of the measured model")
    parser.add_argument("--fit-tokens", default="128,256,512", help="lengths the fit is made on")
    parser.add_argument("--check-tokens", type=int, default=768, help="a length to check it on")
    parser.add_argument("--tokens", default="2000,8192", help="lengths to plan")
    parser.add_argument("--nodes", default="1024,8192", help="max_feature_nodes values")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    forward = measured_forward(
        args.layers, [int(n) for n in args.fit_tokens.split(",")], args.check_tokens
    )
    print(
        f"forward pass, per layer: {forward['fit']['a'] / 1e6:.2f} MB + "
        f"{forward['fit']['b'] / 1e3:.1f} kB n + {forward['fit']['c']:.1f} B n^2; "
        f"off by {100 * forward['check_error']:+.1f}% at {forward['check_tokens']} tokens"
    )
    rows = table(forward["fit"], [int(n) for n in args.tokens.split(",")],
                 [int(k) for k in args.nodes.split(",")])  # fmt: skip
    layouts = [k for k in rows[0] if isinstance(rows[0][k], dict)]
    print(f"{'tokens':>6} {'nodes':>6} {'forward':>8} " + " ".join(f"{x:>22}" for x in layouts))
    for row in rows:
        cells = [f"{row[x]['device_gb']:8.1f} / {row[x]['host_gb']:7.1f} GB" for x in layouts]
        print(f"{row['tokens']:>6} {row['max_feature_nodes']:>6} {row['forward_gb']:6.1f} GB "
              + " ".join(f"{c:>22}" for c in cells))  # fmt: skip
    print("(device: the run's peak and the weights; host: what a GPU run adds on the host)")
    if args.json is not None:
        args.json.write_text(json.dumps({"forward": forward, "plan": rows}, indent=2))


if __name__ == "__main__":
    main()
