"""How close are the supernode suggestions to supernodes made by hand?

    .venv/bin/python -m benchmarks.supernodes_eval [--split dev|test|all] [--show]

The graphs are the demo pack's sample prompts (benchmarks/data/supernodes/*.json.gz, made by
``python -m inference attribute`` at the default pruning); the hand-made groups are
benchmarks/data/supernodes/hand_supernodes.json (read from dashboards and edges before the
method was written; the rubric is in the file). Every feature node is scored, the ones in no
hand group as singletons: pairwise precision, recall and F1 (a pair is "together" in both, or
not) and the adjusted Rand index, per graph and pooled over the graphs.

Signals as the web process has them: decoder rows from the pack's transcoder files
(analysis.decoders), top logits from the dashboards, and token-pattern explanations computed
from the dashboards' examples (what ``manage.py load_demo`` stores, up to its held-out split).

Beside the method: "same layer and position" (every feature at one (layer, position) is a
group) and "decoder cosine alone" (the same average linkage on decoder cosine only, no structure
penalty, at the threshold that suits it best on the dev graphs), and the method without each
of its signals in turn. The dev graphs are the ones the
settings were tuned on; test graphs were not looked at while tuning.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import time
from collections import Counter
from itertools import combinations
from pathlib import Path

from analysis import supernodes
from analysis.decoders import read_decoders
from autointerp import token_pattern
from autointerp.examples import Example

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "benchmarks" / "data" / "supernodes"
PACK = ROOT / "inference" / "packs" / "demo"
DEV = ("demo-facts", "demo-ioi", "demo-addition")
TEST = ("demo-two-hop", "demo-opposites", "demo-opposites-fr", "demo-filler")


def load_graph(slug: str) -> dict:
    return json.loads(gzip.decompress((DATA / f"{slug}.json.gz").read_bytes()))


_dashboards: dict[int, list[dict]] = {}


def dashboard(layer: int, index: int) -> dict:
    if layer not in _dashboards:
        with gzip.open(PACK / "features" / f"layer_{layer}.jsonl.gz", "rt") as f:
            _dashboards[layer] = [json.loads(line) for line in f]
    return _dashboards[layer][index]


def feature_text(layer: int, index: int) -> supernodes.FeatureText:
    d = dashboard(layer, index)
    examples = [
        Example(tuple(e["tokens"]), tuple(float(v) for v in e["tokens_acts_list"]))
        for q in d["examples_quantiles"]
        for e in q["examples"]
    ]
    explanation = token_pattern.explain(examples).text if examples else ""
    return supernodes.FeatureText(explanation, tuple(d.get("top_logits") or ()))


def inputs(graph: dict) -> tuple[dict, dict]:
    keys = {(f.layer, f.index) for f in supernodes.feature_nodes(graph["nodes"])}
    decoders = read_decoders(PACK / "transcoders" / "config.yaml", keys)
    texts = {k: feature_text(*k) for k in keys}
    return decoders, texts


def labels_of(groups: list[list[str]], ids: list[str]) -> list[int]:
    label = {node: g for g, members in enumerate(groups) for node in members}
    fresh = len(groups)
    out = []
    for node in ids:
        if node not in label:
            label[node] = fresh
            fresh += 1
        out.append(label[node])
    return out


def pair_counts(truth: list[int], pred: list[int]) -> tuple[int, int, int]:
    tp = fp = fn = 0
    for i, j in combinations(range(len(truth)), 2):
        t, p = truth[i] == truth[j], pred[i] == pred[j]
        tp += t and p
        fp += p and not t
        fn += t and not p
    return tp, fp, fn


def ari(truth: list[int], pred: list[int]) -> float:
    n = len(truth)
    pairs = Counter(zip(truth, pred, strict=True))

    def c2(x: int) -> float:
        return x * (x - 1) / 2

    index = sum(c2(v) for v in pairs.values())
    a = sum(c2(v) for v in Counter(truth).values())
    b = sum(c2(v) for v in Counter(pred).values())
    expected = a * b / c2(n)
    top = (a + b) / 2
    return 1.0 if top == expected else (index - expected) / (top - expected)


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return p, r, 2 * p * r / (p + r) if p + r else 0.0


def same_cell(graph: dict) -> list[list[str]]:
    cells: dict[tuple[int, int], list[str]] = {}
    for f in supernodes.feature_nodes(graph["nodes"]):
        cells.setdefault((f.layer, f.pos), []).append(f.node_id)
    return [m for m in cells.values() if len(m) > 1]


DECODER_ONLY = dict(weights={"decoder": 1.0}, layer_penalty=0.0, position_penalty=0.0)


def method_groups(graph: dict, decoders: dict, texts: dict, settings: supernodes.Settings) -> list:
    return [
        s.members
        for s in supernodes.suggest(
            graph["nodes"],
            graph["links"],
            decoders=decoders,
            texts=texts,
            tokens=graph["metadata"].get("prompt_tokens", ()),
            settings=settings,
        )
    ]


def decoder_only(graph: dict, decoders: dict, threshold: float) -> list:
    # One position for all, so the structure plays no part: decoder cosine alone.
    nodes = [
        {**n, "node_id": f"{n['node_id'].rsplit('_', 1)[0]}_0"}
        if n.get("feature_type") == "cross layer transcoder"
        else n
        for n in graph["nodes"]
    ]
    flat = {f"{k.rsplit('_', 1)[0]}_0": k for k in (n["node_id"] for n in graph["nodes"])}
    settings = supernodes.Settings(threshold=threshold, **DECODER_ONLY)  # type: ignore[arg-type]
    groups = supernodes.suggest(nodes, [], decoders=decoders, settings=settings)
    return [[flat[m] for m in s.members] for s in groups]


def score(slugs: tuple[str, ...], make) -> dict:
    totals = [0, 0, 0]
    aris = []
    per = {}
    for slug in slugs:
        graph = load_graph(slug)
        ids = [f.node_id for f in supernodes.feature_nodes(graph["nodes"])]
        truth_groups = [s["members"] for s in HAND["graphs"][slug]["supernodes"]]
        truth = labels_of(truth_groups, ids)
        pred = labels_of(make(slug, graph), ids)
        counts = pair_counts(truth, pred)
        totals = [a + b for a, b in zip(totals, counts, strict=True)]
        aris.append(ari(truth, pred))
        per[slug] = (*prf(*counts), aris[-1])
    p, r, f1 = prf(*totals)
    return {"precision": p, "recall": r, "f1": f1, "ari": sum(aris) / len(aris), "per": per}


HAND = json.loads((DATA / "hand_supernodes.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=["dev", "test", "all"], default="all")
    parser.add_argument("--show", action="store_true", help="print each graph's groups")
    args = parser.parse_args()
    slugs = {"dev": DEV, "test": TEST, "all": DEV + TEST}[args.split]
    cache = {}
    for slug in DEV + TEST:
        graph = load_graph(slug)
        cache[slug] = (graph, *inputs(graph))
    settings = supernodes.Settings()
    # The decoder-only baseline gets its best threshold on the dev graphs.
    best = max(
        (t / 20 for t in range(2, 20)),
        key=lambda t: score(DEV, lambda s, g: decoder_only(g, cache[s][1], t))["f1"],
    )
    started = time.perf_counter()
    rows = {
        "method": score(slugs, lambda s, g: method_groups(g, cache[s][1], cache[s][2], settings)),
        "same layer and position": score(slugs, lambda s, g: same_cell(g)),
        f"decoder cosine alone (threshold {best:.2f})": score(
            slugs, lambda s, g: decoder_only(g, cache[s][1], best)
        ),
    }
    # What each signal adds: the method without it (its weight 0), everything else the same.
    for signal in supernodes.SIGNALS:
        weights = {**settings.weights, signal: 0.0}
        ablated = supernodes.Settings(
            threshold=settings.threshold,
            layer_penalty=settings.layer_penalty,
            position_penalty=settings.position_penalty,
            weights=weights,
        )
        rows[f"  without {signal}"] = score(
            slugs,
            lambda s, g, ablated=ablated: method_groups(g, cache[s][1], cache[s][2], ablated),
        )
    elapsed = time.perf_counter() - started
    n_nodes = sum(len(supernodes.feature_nodes(cache[s][0]["nodes"])) for s in slugs)
    print(f"{len(slugs)} graphs ({args.split}), {n_nodes} feature nodes, {elapsed:.2f} s")
    print(f"{'':40s} {'precision':>9s} {'recall':>7s} {'F1':>6s} {'ARI':>6s}")
    for name, row in rows.items():
        print(
            f"{name:40s} {row['precision']:9.3f} {row['recall']:7.3f} {row['f1']:6.3f} "
            f"{row['ari']:6.3f}"
        )
    print("\nmethod per graph (precision, recall, F1, ARI):")
    for slug, (p, r, f1, a) in rows["method"]["per"].items():
        split = "dev" if slug in DEV else "test"
        print(f"  {slug:20s} {split:4s} {p:6.3f} {r:6.3f} {f1:6.3f} {a:6.3f}")
    if args.show:
        for slug in slugs:
            graph, decoders, texts = cache[slug]
            print(f"\n{slug}:")
            for s in supernodes.suggest(
                graph["nodes"],
                graph["links"],
                decoders=decoders,
                texts=texts,
                tokens=graph["metadata"].get("prompt_tokens", ()),
                settings=settings,
            ):
                members = " ".join(
                    f"L{m.split('_')[0]}#{m.split('_')[1]}@{m.split('_')[2]}" for m in s.members
                )
                print(f"  {s.confidence:.2f} {s.name[:60]!r}: {members}")
    assert not math.isnan(rows["method"]["f1"])


if __name__ == "__main__":
    main()
