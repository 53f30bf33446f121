"""Bulk feature lookup benchmark: seed N features (with examples and an explanation each) into
Postgres, then time ``POST /api/v1/features/lookup`` server-side.

    nice .venv/bin/python benchmarks/lookup.py --features 1000000      # the issue's figures
    .venv/bin/python benchmarks/lookup.py --features 10000             # a quick run

It uses its own database (``--database``, default ``atlas_bench``) on the embedded Postgres
under var/ (started if needed, stopped after if this script started it), or on the server in
DATABASE_URL, so the demo's data is never touched. A rerun with the same sizes reuses the seeded
data (``--reseed`` to start over; ``--drop`` to remove the database at the end).

Reported:
- import rate through the importer's write path (parsed features -> INSERT ... unnest + COPY),
  and end to end from ``layer_{i}.jsonl.gz`` files for a smaller sample (parse included);
- stored bytes per feature (tables + indexes + TOAST of features, examples, explanations);
- lookup latency for 1,000 random keys with explanations and logits (p50/p99 over repeated
  requests, measured around the Django request in-process, i.e. server-side), and 10,000 keys.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WORDS = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "that",
    "for",
    "it",
    "as",
    "was",
    "with",
    "be",
    "by",
    "on",
    "not",
    "he",
    "this",
    "are",
    "or",
    "his",
    "from",
    "at",
    "which",
    "but",
    "have",
    "an",
    "they",
    "you",
    "were",
    "her",
    "she",
    "there",
    "been",
    "one",
    "all",
    "we",
    "their",
    "has",
    "would",
    "when",
    "if",
    "so",
    "no",
    "will",
    "Texas",
    "Austin",
    "capital",
    "state",
    "city",
    "river",
    "law",
    "court",
    "music",
    "code",
    "data",
    "graph",
    "feature",
    "token",
    "model",
]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--features", type=int, default=10_000)
    parser.add_argument("--layers", type=int, default=25)
    parser.add_argument("--examples", type=int, default=5, help="Activation examples per feature.")
    parser.add_argument("--tokens", type=int, default=24, help="Tokens per example.")
    parser.add_argument(
        "--file-sample", type=int, default=20_000, help="Features imported from files."
    )
    parser.add_argument("--requests", type=int, default=100, help="1,000-key lookups to time.")
    parser.add_argument("--big-requests", type=int, default=10, help="10,000-key lookups to time.")
    parser.add_argument("--database", default="atlas_bench")
    parser.add_argument("--reseed", action="store_true")
    parser.add_argument("--drop", action="store_true", help="Drop the database at the end.")
    parser.add_argument("--json", type=Path, help="Also write the figures here.")
    return parser.parse_args()


@contextlib.contextmanager
def bench_database(name: str) -> Iterator[str]:
    """The URL of database ``name`` on DATABASE_URL's server or the embedded one (created)."""
    from webapp import embedded

    with embedded.services(
        embedded.var_dir(),
        postgres=not os.environ.get("DATABASE_URL"),
        redis=not os.environ.get("REDIS_URL"),
    ) as urls:
        os.environ.update(urls)
        base = os.environ["DATABASE_URL"]
        parts = urlsplit(base)
        url = urlunsplit(parts._replace(path=f"/{name}"))
        import dj_database_url
        import psycopg
        from psycopg.conninfo import make_conninfo

        cfg = dj_database_url.parse(base)
        parts_ = {
            "dbname": cfg.get("NAME"),
            "user": cfg.get("USER"),
            "password": cfg.get("PASSWORD"),
            "host": cfg.get("HOST"),
            "port": cfg.get("PORT"),
        }
        conninfo = make_conninfo(**{k: str(v) for k, v in parts_.items() if v})
        with psycopg.connect(conninfo, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{name}"')
        try:
            yield url
        finally:
            if ARGS.drop:
                from django.db import connections

                connections.close_all()
                with psycopg.connect(conninfo, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


class Pools:
    """Pre-generated tokens and values, sliced per example: generation must not be the bottleneck."""

    def __init__(self, tokens: int) -> None:
        rng = random.Random(0)
        self.tokens = tokens
        self.words = [
            rng.choice(WORDS) if i % 3 else " " + rng.choice(WORDS) for i in range(100_003)
        ]
        self.values = [round(max(0.0, rng.gauss(0.5, 1.5)), 3) for _ in range(100_019)]

    def example(self, seed: int) -> tuple[list[str], list[float]]:
        a = (seed * 7919) % (len(self.words) - self.tokens)
        b = (seed * 104_729) % (len(self.values) - self.tokens)
        return self.words[a : a + self.tokens], self.values[b : b + self.tokens]


def fake_dashboard(pools: Pools, layer: int, index: int, n_examples: int) -> dict[str, Any]:
    seed = layer * 1_000_003 + index
    examples = []
    for e in range(n_examples):
        tokens, values = pools.example(seed * 11 + e)
        examples.append(
            {
                "tokens": tokens,
                "tokens_acts_list": values,
                "train_token_ind": e,
                "is_repeated_datapoint": False,
            }
        )
    return {
        "index": index,
        "layer": layer,
        "act_min": 0.0,
        "act_max": 5.0,
        "activation_frequency": (seed % 997) / 10_000,
        "histogram": [seed % 13, 7, 3, 1],
        "top_logits": [pools.words[(seed + k) % 1000] for k in range(10)],
        "bottom_logits": [pools.words[(seed * 3 + k) % 1000] for k in range(10)],
        "examples_quantiles": [{"quantile_name": "Top activations", "examples": examples}],
    }


def seed_features(ts: Any, args: argparse.Namespace, pools: Pools) -> dict[str, float]:
    from features.importers.dashboards import parse_feature
    from features.importers.writer import Progress, write_batch

    per_layer = args.features // args.layers
    progress = Progress()
    started = time.perf_counter()
    batch = []
    total = per_layer * args.layers
    for layer in range(args.layers):
        for index in range(per_layer):
            obj = fake_dashboard(pools, layer, index, args.examples)
            batch.append(
                parse_feature(obj, "bench", layer_hint=None, stem="", max_examples=args.examples)
            )
            if len(batch) >= 5000:
                write_batch(ts, batch, replace=False, progress=progress)
                batch = []
                done = progress.created + progress.skipped
                if done % 100_000 < 5000:
                    rate = done / (time.perf_counter() - started)
                    print(f"  seeded {done:,}/{total:,} features ({rate:,.0f}/s)", flush=True)
    if batch:
        write_batch(ts, batch, replace=False, progress=progress)
    seconds = time.perf_counter() - started
    return {"features": progress.created, "seconds": seconds, "rate": progress.created / seconds}


def seed_explanations(ts: Any) -> float:
    """One explanation per feature, written with INSERT ... SELECT (generated in SQL)."""
    from django.db import connection, transaction

    started = time.perf_counter()
    words = WORDS
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO features_explanation (feature_id, text, method, score, created_at)
            SELECT f.id,
                   (%(w)s::text[])[1 + f.index %% %(n)s] || ' ' || (%(w)s::text[])[1 + f.layer %% %(n)s]
                     || ' and ' || (%(w)s::text[])[1 + (f.index / 7) %% %(n)s] || ' tokens',
                   'bench', (f.index %% 100) / 100.0, now()
            FROM features_feature f WHERE f.transcoder_set_id = %(ts)s
            """,
            {"w": words, "n": len(words), "ts": ts.pk},
        )
        cursor.execute("SELECT id FROM features_feature WHERE transcoder_set_id = %s", [ts.pk])
        ids = [row[0] for row in cursor.fetchall()]
    from features.models import refresh_explanations

    for start in range(0, len(ids), 50_000):
        refresh_explanations(ids[start : start + 50_000])
    return time.perf_counter() - started


def file_import(ts: Any, args: argparse.Namespace, pools: Pools) -> dict[str, float]:
    """End to end from layer_{i}.jsonl.gz files (gunzip + JSON parse + validate + write)."""
    from features.importers.writer import import_features

    n = args.file_sample
    per_layer = max(1, n // args.layers)
    with tempfile.TemporaryDirectory() as tmp:
        for layer in range(args.layers):
            with gzip.open(Path(tmp) / f"layer_{layer}.jsonl.gz", "wt", compresslevel=1) as handle:
                for index in range(per_layer):
                    obj = fake_dashboard(pools, layer, index, args.examples)
                    del obj["layer"]  # as the demo pack writes them: layer from the file name
                    handle.write(json.dumps(obj) + "\n")
        started = time.perf_counter()
        progress = import_features(ts, [Path(tmp)], max_examples=args.examples)
        seconds = time.perf_counter() - started
    return {"features": progress.created, "seconds": seconds, "rate": progress.created / seconds}


def stored_bytes(ts_ids: list[int]) -> dict[str, float]:
    from django.db import connection

    sizes = {}
    with connection.cursor() as cursor:
        for table in ("features_feature", "features_activationexample", "features_explanation"):
            cursor.execute("SELECT pg_total_relation_size(%s)", [table])
            sizes[table] = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM features_feature")
        count = cursor.fetchone()[0]
    return {
        "features_total": count,
        **{f"{table}_bytes": size for table, size in sizes.items()},
        "bytes_per_feature": sum(sizes.values()) / max(count, 1),
    }


def time_lookups(
    client: Any, keys: list[dict[str, Any]], repeats: int, include: list[str]
) -> dict[str, float]:
    body = json.dumps({"features": keys, "include": include})
    walls, dbs = [], []
    for i in range(repeats + 3):
        started = time.perf_counter()
        response = client.post("/api/v1/features/lookup", body, content_type="application/json")
        wall = (time.perf_counter() - started) * 1000
        assert response.status_code == 200, response.content[:500]
        if i < 3:  # warm-up
            continue
        walls.append(wall)
        timing = dict(part.strip().split(";dur=") for part in response["Server-Timing"].split(","))
        dbs.append(float(timing["db"]))
    data = json.loads(response.content)
    walls.sort()
    return {
        "keys": len(keys),
        "found": len(data["results"]),
        "missing": len(data["missing"]),
        "response_bytes": len(response.content),
        "p50_ms": statistics.median(walls),
        "p99_ms": walls[min(len(walls) - 1, round(0.99 * (len(walls) - 1)))],
        "max_ms": walls[-1],
        "db_p50_ms": statistics.median(dbs),
    }


def random_keys(
    rng: random.Random, n: int, args: argparse.Namespace, *, set_slug: str
) -> list[dict[str, Any]]:
    per_layer = args.features // args.layers
    return [
        {
            "model": "bench",
            "set": set_slug,
            "layer": rng.randrange(args.layers),
            "index": rng.randrange(per_layer),
        }
        for _ in range(n)
    ]


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
    with bench_database(ARGS.database) as url:
        os.environ["DATABASE_URL"] = url
        import django

        django.setup()
        from django.conf import settings
        from django.core.management import call_command
        from django.test import Client

        from features.models import Feature, LanguageModel, TranscoderSet

        settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
        from rest_framework.throttling import SimpleRateThrottle

        SimpleRateThrottle.THROTTLE_RATES = {
            **SimpleRateThrottle.THROTTLE_RATES,
            "lookups": "1000000/hour",
        }
        call_command("migrate", verbosity=0)
        per_layer = ARGS.features // ARGS.layers
        model, _ = LanguageModel.objects.get_or_create(
            slug="bench",
            defaults={
                "display_name": "Benchmark",
                "n_layers": ARGS.layers,
                "d_model": 2304,
                "vocab_size": 256_000,
            },
        )
        ts, _ = TranscoderSet.objects.get_or_create(
            model=model,
            slug="bench-plt",
            defaults={"features_per_layer": max(per_layer, ARGS.file_sample)},
        )
        files_ts, _ = TranscoderSet.objects.get_or_create(
            model=model,
            slug="bench-files",
            defaults={"features_per_layer": max(per_layer, ARGS.file_sample)},
        )
        pools = Pools(ARGS.tokens)
        figures: dict[str, Any] = {"args": {k: str(v) for k, v in vars(ARGS).items()}}
        have = Feature.objects.filter(transcoder_set=ts).count()
        if ARGS.reseed or have != per_layer * ARGS.layers:
            print(
                f"seeding {per_layer * ARGS.layers:,} features ({ARGS.examples} examples x {ARGS.tokens} tokens each)"
            )
            from django.db import connection

            with connection.cursor() as cursor:  # TRUNCATE, not DELETE: no bloat in the sizes
                cursor.execute(
                    "TRUNCATE features_feature, features_activationexample, features_explanation, "
                    "features_featureimport"
                )
            figures["seed"] = seed_features(ts, ARGS, pools)
            figures["seed"]["explanations_seconds"] = seed_explanations(ts)
            print(f"  {figures['seed']['rate']:,.0f} features/s through the write path")
            figures["file_import"] = file_import(files_ts, ARGS, pools)
            print(
                f"  {figures['file_import']['rate']:,.0f} features/s end to end from .jsonl.gz files"
            )
            from django.db import connection

            with connection.cursor() as cursor:
                # FULL: refreshing the explanation cache rewrote every feature row once.
                cursor.execute("VACUUM FULL ANALYZE features_feature")
                cursor.execute("VACUUM ANALYZE features_activationexample")
                cursor.execute("VACUUM ANALYZE features_explanation")
        else:
            print(f"reusing {have:,} seeded features (--reseed to start over)")
        figures["storage"] = stored_bytes([ts.pk, files_ts.pk])
        print(f"stored bytes per feature: {figures['storage']['bytes_per_feature']:,.0f}")

        client = Client()
        rng = random.Random(42)
        runs = {
            "lookup_1000": (1000, ARGS.requests, ["explanations", "logits"]),
            "lookup_10000": (10_000, ARGS.big_requests, ["explanations", "logits"]),
            "lookup_1000_with_activations": (
                1000,
                max(5, ARGS.requests // 5),
                ["explanations", "logits", "activations"],
            ),
        }
        for name, (n, repeats, include) in runs.items():
            keys = random_keys(rng, n, ARGS, set_slug="bench-plt")
            figures[name] = time_lookups(client, keys, repeats, include)
            f = figures[name]
            print(
                f"{name}: p50 {f['p50_ms']:.1f} ms, p99 {f['p99_ms']:.1f} ms (db p50 {f['db_p50_ms']:.1f} ms), "
                f"{f['found']:,} found, {f['response_bytes'] / 1e6:.2f} MB"
            )
        if ARGS.json:
            ARGS.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    ARGS = parse_args()
    main()
