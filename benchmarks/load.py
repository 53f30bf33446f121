"""Team-load benchmark: many parallel clients against the real ASGI server, on loopback.

    nice -n 5 .venv/bin/python benchmarks/load.py                       # 50 clients, the issue's goal
    .venv/bin/python benchmarks/load.py --clients 10 --requests 10      # a quick run

The web server is the one ``manage.py up`` runs (uvicorn on ``webapp.asgi``, with its database
connection pool), in a child process, against the embedded Postgres/Redis under
``var/bench-load`` (or DATABASE_URL/REDIS_URL) and a database of its own (``atlas_bench_load``,
recreated each run), so the demo's data is never touched. Rate limits are lifted for the run
(they would answer 429 long before the server is stressed). Seeded: a public model with
``--features`` features and ``--graphs`` public graphs of ``--graph-nodes`` nodes each.

Each of ``--clients`` threads keeps one HTTP/1.1 connection, as a browser tab does, and sends
``--requests`` requests in turn: a bulk lookup of 20 random features (``POST
/api/v1/features/lookup``), a graph list (``GET /api/v1/graphs?page_size=5``) and a whole graph
artifact (``GET .../artifact``, gzip). Bounded: every request has a 30 s timeout and the run
stops after ``--max-seconds``. Reported: requests, errors (any status other than 200, or a
failed connection, with the first few bodies), latency p50/p95/p99/max per kind and overall,
throughput, the Postgres connections the server held at the end, and the machine's load.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import http.client
import json
import os
import random
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("ATLAS_VAR_DIR", str(ROOT / "var" / "bench-load"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

from tests.e2e.synthetic_graph import synthetic_graph  # noqa: E402

DATABASE = "atlas_bench_load"
KINDS = ("lookup", "list", "artifact")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=30, help="Requests per client.")
    parser.add_argument("--features", type=int, default=5000)
    parser.add_argument("--graphs", type=int, default=10)
    parser.add_argument("--graph-nodes", type=int, default=300)
    parser.add_argument("--max-seconds", type=float, default=300.0)
    parser.add_argument("--json", type=Path, help="Also write the figures here.")
    return parser.parse_args()


@contextlib.contextmanager
def services_and_database() -> Iterator[dict[str, str]]:
    """Embedded (or given) servers, and the URL of a freshly created benchmark database."""
    import dj_database_url
    import psycopg
    from psycopg.conninfo import make_conninfo

    from webapp import embedded

    with embedded.services(
        embedded.var_dir(),
        postgres=not os.environ.get("DATABASE_URL"),
        redis=not os.environ.get("REDIS_URL"),
    ) as urls:
        env: dict[str, str] = dict(urls)
        base = urls.get("DATABASE_URL") or os.environ["DATABASE_URL"]
        cfg = dj_database_url.parse(base)
        fields = {"dbname": cfg["NAME"], "user": cfg["USER"], "host": cfg["HOST"]}
        conninfo = make_conninfo(
            **{k: str(v) for k, v in fields.items() if v},
            **{k: str(v) for k, v in (("port", cfg["PORT"]), ("password", cfg["PASSWORD"])) if v},
        )
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{DATABASE}"')
        env["DATABASE_URL"] = urlunsplit(urlsplit(base)._replace(path=f"/{DATABASE}"))
        env["BENCH_ADMIN_CONNINFO"] = conninfo
        yield env


def seed(args: argparse.Namespace) -> list[str]:
    """Migrate and seed; return the artifact paths of the seeded graphs."""
    import django

    django.setup()
    from django.core.management import call_command

    from features.models import Feature, LanguageModel, TranscoderSet
    from graphs.services import import_graph_bytes

    call_command("migrate", verbosity=0)
    model = LanguageModel.objects.create(
        slug="bench", display_name="Benchmark", n_layers=16, d_model=512, vocab_size=50_000
    )
    per_layer = args.features // 16
    ts = TranscoderSet.objects.create(model=model, slug="bench-plt", features_per_layer=per_layer)
    Feature.objects.bulk_create(
        [
            Feature(
                transcoder_set=ts,
                layer=layer,
                index=index,
                top_logits=[" the", " a", " of"],
                bottom_logits=[" and"],
            )
            for layer in range(16)
            for index in range(per_layer)
        ],
        batch_size=5000,
    )
    paths = []
    for i in range(args.graphs):
        document = synthetic_graph(args.graph_nodes, args.graph_nodes * 10, seed=i, slug=f"g{i}")
        graph = import_graph_bytes(
            json.dumps(document).encode(),
            model_slug="bench",
            slug=f"g{i}",
            owner=None,
            visibility="public",
        )
        paths.append(f"/api/v1/graphs/bench/{graph.slug}/artifact")
    from django.db import connections

    connections.close_all()
    return paths


def start_server(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "uvicorn", "webapp.asgi:application",
        "--host", "127.0.0.1", "--port", str(port), "--lifespan", "off", "--log-level", "warning",
        "--workers", os.environ.get("BENCH_WEB_WORKERS", "1"),
    ]  # fmt: skip
    lifted = {f"API_{scope}_RATE": "100000000/hour" for scope in ("LOOKUP", "WRITE", "UPLOAD")}
    server = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **env, **lifted})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/models", timeout=2).close()
            return server
        except OSError:
            if server.poll() is not None:
                raise SystemExit("the web server exited during start-up") from None
            time.sleep(0.3)
    server.kill()
    raise SystemExit("the web server did not answer within 60 s")


class Client(threading.Thread):
    def __init__(
        self, port: int, n: int, artifacts: list[str], args: argparse.Namespace, seed: int
    ) -> None:
        super().__init__(daemon=True)
        self.port, self.n, self.artifacts, self.args = port, n, artifacts, args
        self.rng = random.Random(seed)
        self.timings: list[tuple[str, float]] = []
        self.errors: list[str] = []
        self.sent = 0
        self.deadline = 0.0

    def _request(self, kind: str) -> tuple[str, str, bytes | None, dict[str, str]]:
        if kind == "lookup":
            per_layer = self.args.features // 16
            keys = [
                {
                    "model": "bench",
                    "set": "bench-plt",
                    "layer": self.rng.randrange(16),
                    "index": self.rng.randrange(per_layer),
                }
                for _ in range(20)
            ]
            body = json.dumps({"features": keys}).encode()
            return "POST", "/api/v1/features/lookup", body, {"Content-Type": "application/json"}
        if kind == "list":
            return "GET", "/api/v1/graphs?page_size=5", None, {}
        return "GET", self.rng.choice(self.artifacts), None, {"Accept-Encoding": "gzip"}

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        for i in range(self.n):
            if time.monotonic() > self.deadline:
                break
            kind = KINDS[(i + self.rng.randrange(3)) % 3]
            method, path, body, headers = self._request(kind)
            started = time.perf_counter()
            self.sent += 1
            try:
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                status = response.status
            except (OSError, http.client.HTTPException) as exc:
                self.errors.append(f"{kind}: {type(exc).__name__}: {exc}")
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                continue
            self.timings.append((kind, (time.perf_counter() - started) * 1000))
            if status != 200:
                if response.getheader("Content-Encoding") == "gzip":
                    data = gzip.decompress(data)
                self.errors.append(f"{kind}: {status} {data[:200]!r}")
        conn.close()


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {}

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))], 1)

    return {"p50_ms": at(0.5), "p95_ms": at(0.95), "p99_ms": at(0.99), "max_ms": at(1.0)}


def server_connections(conninfo: str) -> int:
    import psycopg

    with psycopg.connect(conninfo, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [DATABASE]
        ).fetchone()
    return int(row[0]) if row else 0


def main() -> None:
    args = parse_args()
    from tests.foundation.conftest import free_port

    with services_and_database() as env:
        conninfo = env.pop("BENCH_ADMIN_CONNINFO")
        os.environ.update(env)
        print(f"seeding {args.features:,} features and {args.graphs} graphs", flush=True)
        artifacts = seed(args)
        port = free_port()
        server = start_server(env, port)
        try:
            clients = [
                Client(port, args.requests, artifacts, args, seed) for seed in range(args.clients)
            ]
            started = time.monotonic()
            for client in clients:
                client.deadline = started + args.max_seconds
                client.start()
            for client in clients:
                client.join(timeout=args.max_seconds + 60)
            seconds = time.monotonic() - started
            held = server_connections(conninfo)
        finally:
            server.terminate()
            server.wait(timeout=30)
    timings = [t for client in clients for t in client.timings]
    errors = [e for client in clients for e in client.errors]
    figures: dict[str, Any] = {
        "clients": args.clients,
        "requests": sum(client.sent for client in clients),
        "errors": len(errors),
        "seconds": round(seconds, 1),
        "requests_per_s": round(len(timings) / seconds, 1),
        "overall": percentiles([ms for _, ms in timings]),
        **{kind: percentiles([ms for k, ms in timings if k == kind]) for kind in KINDS},
        "postgres_connections_at_end": held,
        "load_average": os.getloadavg(),
    }
    print(json.dumps(figures, indent=2))
    for error in errors[:5]:
        print("error:", error)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
