"""The embedded servers: sized for the web process's pool, and Redis keeps its port."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from tests.foundation.conftest import ROOT
from webapp import embedded

pytestmark = [pytest.mark.services, pytest.mark.slow]

# A process that joins the embedded servers, prints their URLs and holds them until stdin closes:
# what `manage.py up` (or any other manage.py command) does.
_HOLDER = """
import json, sys
from pathlib import Path
from webapp import embedded
with embedded.services(Path(sys.argv[1]), postgres=sys.argv[2] == "pg", redis=True) as urls:
    print(json.dumps(urls), flush=True)
    sys.stdin.read()
"""


@pytest.fixture
def var_dir() -> Iterator[Path]:
    # Not under tmp_path: see tests/foundation/test_up.py (the embedded Postgres's own user).
    path = Path(tempfile.mkdtemp(prefix="atlas-embedded-test-")) / "var"
    yield path
    for server in (embedded.EmbeddedRedis(path), embedded.EmbeddedPostgres(path)):
        server.stop()
    shutil.rmtree(path.parent, ignore_errors=True)


class Holder:
    def __init__(self, var_dir: Path, *, postgres: bool = False) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", _HOLDER, str(var_dir), "pg" if postgres else "-"],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        import json

        self.urls: dict[str, str] = json.loads(self.process.stdout.readline())

    def leave(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        assert self.process.wait(timeout=60) == 0


def test_embedded_postgres_has_room_for_the_web_pool(var_dir: Path) -> None:
    holder = Holder(var_dir, postgres=True)
    try:
        with psycopg.connect(holder.urls["DATABASE_URL"]) as conn:
            row = conn.execute("SHOW max_connections").fetchone()
        assert row is not None
        assert int(row[0]) == embedded.POSTGRES_MAX_CONNECTIONS
    finally:
        holder.leave()


def test_redis_restarted_by_another_command_comes_back_on_the_same_port(var_dir: Path) -> None:
    up = Holder(var_dir)  # plays `manage.py up`: web and worker were given this URL
    try:
        client = redis.Redis.from_url(up.urls["REDIS_URL"], socket_timeout=5)
        assert client.ping()
        # Redis dies with clients connected: its side of those connections lingers in TIME_WAIT.
        pid = int((var_dir / "redis" / "redis.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        while embedded.EmbeddedRedis(var_dir).running_url() is not None:
            time.sleep(0.05)
        with pytest.raises(redis.ConnectionError):
            client.ping()

        other = Holder(var_dir)  # another manage.py command starts it again
        assert other.urls["REDIS_URL"] == up.urls["REDIS_URL"]
        assert client.ping()  # the processes holding the old URL reconnect
        other.leave()
    finally:
        up.leave()


def test_a_shared_redis_whose_port_was_taken_is_an_error_not_a_move(var_dir: Path) -> None:
    import socket

    up = Holder(var_dir)
    try:
        port = int(up.urls["REDIS_URL"].rsplit(":", 1)[1].split("/")[0])
        embedded.EmbeddedRedis(var_dir).stop()
        with socket.socket() as squatter:
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            squatter.bind(("127.0.0.1", port))
            squatter.listen()
            server = embedded.EmbeddedRedis(var_dir)
            with pytest.raises(embedded.EmbeddedServiceError, match=f"on its port {port}"):
                server.users.join(server.start)
    finally:
        up.leave()
