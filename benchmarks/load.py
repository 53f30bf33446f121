"""Team-load benchmark: many parallel clients against the real ASGI server, on loopback.

    flock /work/wt/.bench.lock nice -n 5 .venv/bin/python benchmarks/load.py \
        --json benchmarks/results/cpu-2026-12-01-load.json          # 50 clients, the issue's goal
    .venv/bin/python benchmarks/load.py --clients 10 --requests 10      # a quick run
    .venv/bin/python benchmarks/load.py --profile /tmp/web.txt          # where one web process spends it

What it starts: the web server exactly as ``manage.py up`` runs it (``web_command`` in
webapp/management/commands/up.py: uvicorn on ``webapp.asgi`` with ``WEB_WORKERS`` processes, 2 by
default, no access log, DEBUG off, each process with its database connection pool), in a child
process, against the embedded Postgres/Redis under ``var/bench-load`` (or DATABASE_URL/REDIS_URL)
and a database of its own (``atlas_bench_load``, recreated each run), so the demo's data is never
touched. No Celery worker: no request here makes a job. Rate limits are lifted for the run (they
would answer 429 long before the server is stressed), but still checked, in Redis, per request.
Seeded: a public model with ``--features`` features and ``--graphs`` public graphs of
``--graph-nodes`` nodes each.

Each of ``--clients`` clients keeps one HTTP/1.1 connection, as a browser tab does, and sends
``--requests`` requests in turn, with no pause between them: a bulk lookup of 20 random features
(``POST /api/v1/features/lookup``), a graph list (``GET /api/v1/graphs?page_size=5``) and a whole
graph artifact (``GET .../artifact``, gzip). The clients are coroutines in this one process (see
``Client``), so the generator costs well under a millisecond of CPU per request. Bounded: every
request has a 30 s timeout and the run stops after ``--max-seconds``. Reported: requests, errors
by kind (any status other than 200, or a failed connection, with the first few bodies), latency
p50/p95/p99/max per kind and overall, throughput, CPU per request of the server (all its
processes) and of this generator, the Postgres connections the server held at the end, and the
machine's load average.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psutil

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
    parser.add_argument(
        "--profile",
        type=Path,
        help="Sample the server's stacks (one web process) and write the profile here "
        "(benchmarks/profiled_server.py).",
    )
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


def start_server(env: dict[str, str], port: int, profile: Path | None) -> subprocess.Popen[bytes]:
    from webapp.management.commands.up import web_command

    command = web_command("127.0.0.1", port)
    if profile is not None:
        command = [
            sys.executable,
            "-m",
            "benchmarks.profiled_server",
            str(profile),
            "--port",
            str(port),
        ]
    lifted = {f"API_{scope}_RATE": "100000000/hour" for scope in ("LOOKUP", "WRITE", "UPLOAD")}
    # As `manage.py up` runs it: DEBUG off unless the environment asks for it.
    server_env = {"DEBUG": "false", **os.environ, **env, **lifted}
    server = subprocess.Popen(command, cwd=ROOT, env=server_env)
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


class Client:
    """One keep-alive HTTP/1.1 connection sending requests in turn, as a browser tab does.

    All clients run in one asyncio loop in this process, speaking HTTP/1.1 over asyncio streams:
    50 client threads with http.client cost about as much CPU as the server they measure, on a
    2-core machine, and that CPU is taken from the server (the figures report both)."""

    def __init__(
        self, port: int, n: int, artifacts: list[str], args: argparse.Namespace, seed: int
    ) -> None:
        self.port, self.n, self.artifacts, self.args = port, n, artifacts, args
        self.rng = random.Random(seed)
        self.timings: list[tuple[str, float]] = []
        self.errors: list[tuple[str, str]] = []  # (kind of error, first line of it)
        self.sent = 0

    def _request(self, kind: str) -> bytes:
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
            head = (
                "POST /api/v1/features/lookup HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            )
            return head.encode() + body
        path = "/api/v1/graphs?page_size=5" if kind == "list" else self.rng.choice(self.artifacts)
        return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept-Encoding: gzip\r\n\r\n".encode()

    async def run(self, deadline: float) -> None:
        connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        for i in range(self.n):
            if time.monotonic() > deadline:
                break
            kind = KINDS[(i + self.rng.randrange(3)) % 3]
            request = self._request(kind)
            started = time.perf_counter()
            self.sent += 1
            try:
                if connection is None:
                    connection = await asyncio.open_connection("127.0.0.1", self.port)
                status, headers, body = await asyncio.wait_for(
                    _exchange(*connection, request), timeout=30
                )
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
                self.errors.append((f"{kind} {type(exc).__name__}", str(exc)[:200]))
                if connection is not None:
                    connection[1].close()
                connection = None
                continue
            self.timings.append((kind, (time.perf_counter() - started) * 1000))
            if status != 200:
                if headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                self.errors.append((f"{kind} {status}", repr(body[:200])))
            if headers.get("connection") == "close":
                connection[1].close()
                connection = None
        if connection is not None:
            connection[1].close()


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, dict[str, str], bytes]:
    """Send one request; read its response (Content-Length or chunked body)."""
    writer.write(request)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split(" ", 2)[1])
    headers = {}
    for line in lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        chunks = []
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)
        await reader.readuntil(b"\r\n")
        body = b"".join(chunks)
    else:
        body = b""
    return status, headers, body


async def run_clients(clients: list[Client], max_seconds: float) -> None:
    deadline = time.monotonic() + max_seconds
    await asyncio.gather(*(client.run(deadline) for client in clients))


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


def cpu_seconds(process: psutil.Process) -> float:
    """CPU time of a process and of its live children (uvicorn's worker processes)."""
    total = 0.0
    for proc in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


def main() -> None:
    args = parse_args()
    from django.conf import settings

    from tests.foundation.conftest import free_port

    with services_and_database() as env:
        conninfo = env.pop("BENCH_ADMIN_CONNINFO")
        os.environ.update(env)
        print(f"seeding {args.features:,} features and {args.graphs} graphs", flush=True)
        artifacts = seed(args)
        port = free_port()
        server = start_server(env, port, args.profile)
        try:
            clients = [
                Client(port, args.requests, artifacts, args, seed) for seed in range(args.clients)
            ]
            watched = psutil.Process(server.pid)
            server_cpu = cpu_seconds(watched)
            client_cpu = time.process_time()
            if args.profile is not None:
                server.send_signal(signal.SIGUSR1)
            started = time.monotonic()
            asyncio.run(run_clients(clients, args.max_seconds))
            seconds = time.monotonic() - started
            client_cpu = time.process_time() - client_cpu
            server_cpu = cpu_seconds(watched) - server_cpu
            held = server_connections(conninfo)
        finally:
            server.terminate()
            server.wait(timeout=30)
    timings = [t for client in clients for t in client.timings]
    errors = [e for client in clients for e in client.errors]
    figures: dict[str, Any] = {
        "clients": args.clients,
        "web_workers": 1 if args.profile else settings.WEB_WORKERS,
        "requests": sum(client.sent for client in clients),
        "errors": len(errors),
        "errors_by_kind": dict(Counter(kind for kind, _ in errors)),
        "seconds": round(seconds, 1),
        "requests_per_s": round(len(timings) / seconds, 1),
        "overall": percentiles([ms for _, ms in timings]),
        **{kind: percentiles([ms for k, ms in timings if k == kind]) for kind in KINDS},
        # CPU per answered request: the server's (all its processes) and this load generator's.
        "server_cpu_ms_per_request": round(server_cpu * 1000 / max(1, len(timings)), 2),
        "client_cpu_ms_per_request": round(client_cpu * 1000 / max(1, len(timings)), 2),
        "postgres_connections_at_end": held,
        "load_average": os.getloadavg(),
    }
    print(json.dumps(figures, indent=2))
    for kind, message in errors[:5]:
        print("error:", kind, message)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
