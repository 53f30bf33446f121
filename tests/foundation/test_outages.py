"""`manage.py up` through outages: with Redis down the API answers 503 in its JSON shape with
Retry-After while pages that need no Redis keep working; with Postgres down, 503; both recover by
themselves within 30 s of the server coming back (on the same port, see test_embedded)."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.request
from email.message import Message
from pathlib import Path
from typing import Any

import pytest

from tests.foundation.conftest import free_port
from tests.foundation.test_up import UpProcess, _wait_healthy, var_dir
from webapp import embedded

__all__ = ["var_dir"]

pytestmark = [
    pytest.mark.services,
    pytest.mark.slow,
    # Stops and restarts the servers, which only the embedded ones allow: .ci/run's rerun against
    # the machine's own servers leaves it out (-m "not embedded_only"); make test runs it.
    pytest.mark.embedded_only,
    pytest.mark.skipif(
        os.environ.get("ATLAS_TEST_EMBEDDED") != "1",
        reason="stops and restarts the servers, which only the embedded ones allow",
    ),
]

LOOKUP = json.dumps({"features": [{"model": "none", "set": "x", "layer": 0, "index": 0}]})


def _call(port: int, path: str, body: str | None = None) -> tuple[int, Message, bytes]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=body.encode() if body else None,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def _recovers(port: int, path: str, body: str | None = None) -> float:
    """Seconds until ``path`` answers 200 again (fails past 30 s)."""
    started = time.monotonic()
    while (status := _call(port, path, body)[0]) != 200:
        assert time.monotonic() - started < 30, f"{path} still answers {status}"
        time.sleep(0.5)
    return time.monotonic() - started


def _assert_503(answer: tuple[int, Message, bytes], service: str) -> dict[str, Any]:
    status, headers, body = answer
    assert status == 503, body
    assert headers["Retry-After"] == "10"
    error = json.loads(body)
    assert set(error) == {"error", "detail", "retry_after"}
    assert service in error["error"]
    return error


def test_the_site_survives_redis_and_postgres_outages(var_dir: Path) -> None:
    up = UpProcess(var_dir, free_port())
    try:
        up.wait_for("Circuit Atlas is up at")
        _wait_healthy(up)
        assert _call(up.port, "/api/v1/features/lookup", LOOKUP)[0] == 200

        redis_server = embedded.EmbeddedRedis(var_dir)
        redis_server.stop()
        _assert_503(_call(up.port, "/api/v1/features/lookup", LOOKUP), "Redis")
        assert _call(up.port, "/")[0] == 200
        assert _call(up.port, "/api/v1/graphs")[0] == 200
        redis_server.start(shared=True)
        _recovers(up.port, "/api/v1/features/lookup", LOOKUP)

        postgres = embedded.EmbeddedPostgres(var_dir)
        postgres.stop()
        _assert_503(_call(up.port, "/api/v1/graphs"), "database")
        postgres.start()
        _recovers(up.port, "/api/v1/graphs")
        _recovers(up.port, "/")
        assert up.process.poll() is None
    finally:
        up.process.send_signal(signal.SIGTERM)
        up.process.wait(timeout=60)
