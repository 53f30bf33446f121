"""Token-pattern explanations of every demo feature: speed and the distribution of scores.

    nice -n 5 .venv/bin/python benchmarks/explanations.py            # the figures in docs
    .venv/bin/python benchmarks/explanations.py --layers 0 --json out.json

Reads the demo pack's dashboards (``inference/packs/demo/features``) and runs exactly what
``manage.py explain_features`` runs per feature (``features.explaining.feature_examples``, the
same silent windows, then ``autointerp.pipeline.explain_token_pattern``), in one process, without
the database: the rate is the method's, the database writes come on top (``make demo`` reports
its own total). Reported: features explained and scored per minute, and per layer and overall
the median simulation, detection and fuzzing scores and the share of simulation scores ≥ 0.8.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")


def _rows(feature: dict[str, Any]) -> list[SimpleNamespace]:
    """A dashboard line's examples shaped like ActivationExample rows, in rank order."""
    return [
        SimpleNamespace(
            quantile=q["quantile_name"], tokens=e["tokens"], values=e["tokens_acts_list"]
        )
        for q in feature.get("examples_quantiles") or []
        for e in q["examples"]
    ]


def _layer(path: Path) -> int:
    return int(path.name.split("_")[1].split(".")[0])


def _summary(scores: dict[str, list[float]], explained: int) -> dict[str, Any]:
    simulation = scores["simulation"]
    return {
        "explained": explained,
        "scored": len(simulation),
        "median_simulation": round(statistics.median(simulation), 3) if simulation else None,
        "share_simulation_at_least_0.8": round(
            sum(s >= 0.8 for s in simulation) / len(simulation), 3
        )
        if simulation
        else None,
        "median_detection": round(statistics.median(scores["detection"]), 3)
        if scores["detection"]
        else None,
        "median_fuzzing": round(statistics.median(scores["fuzzing"]), 3)
        if scores["fuzzing"]
        else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pack", type=Path, default=ROOT / "inference" / "packs" / "demo")
    parser.add_argument("--layers", default="", help="comma-separated; default: every layer")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()

    import django

    django.setup()
    from autointerp.pipeline import explain_token_pattern
    from features.explaining import feature_examples, silent_seed

    files = sorted((args.pack / "features").glob("layer_*.jsonl.gz"))
    if args.layers:
        wanted = {int(x) for x in args.layers.split(",")}
        files = [f for f in files if _layer(f) in wanted]
    if not files:
        sys.exit(f"--pack: no layer_*.jsonl.gz under {args.pack / 'features'}")
    overall: dict[str, list[float]] = {"simulation": [], "detection": [], "fuzzing": []}
    per_layer, total, explained_total, seconds = {}, 0, 0, 0.0
    for path in files:
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            features = [json.loads(line) for line in handle if line.strip()]
        rows = [_rows(f) for f in features]
        started = time.perf_counter()
        # As features.explaining.silent_windows: every distinct window of the layer, in order.
        pool = list(dict.fromkeys(tuple(r.tokens) for feature_rows in rows for r in feature_rows))
        layer: dict[str, list[float]] = {"simulation": [], "detection": [], "fuzzing": []}
        explained = 0
        layer_number = _layer(path)
        for n, feature_rows in enumerate(rows):
            seed = silent_seed(layer_number, n)
            result = explain_token_pattern(feature_examples(feature_rows, pool, seed=seed))
            if result is None:
                continue
            explained += 1
            for method, score in result.scores_dict().items():
                layer[method].append(float(score["value"]))  # type: ignore[arg-type]
        seconds += time.perf_counter() - started
        total += len(features)
        explained_total += explained
        per_layer[path.name] = _summary(layer, explained)
        for method, values in layer.items():
            overall[method] += values
    figures = {
        "features": total,
        "seconds": round(seconds, 1),
        "features_per_minute": round(total / seconds * 60),
        "load_1min": round(os.getloadavg()[0], 2),
        "overall": _summary(overall, explained_total),
        "per_layer": per_layer,
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
