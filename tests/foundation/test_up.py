"""`manage.py up` runs everything until SIGTERM and leaves nothing behind, even after a kill -9."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.foundation.conftest import ROOT, free_port
from webapp import embedded

pytestmark = [pytest.mark.services, pytest.mark.slow]


class UpProcess:
    def __init__(self, var_dir: Path, port: int) -> None:
        environment = {**os.environ, "ATLAS_VAR_DIR": str(var_dir), "PYTHONUNBUFFERED": "1"}
        if os.environ.get("ATLAS_TEST_EMBEDDED") == "1":
            # The test run's own servers came from its plugin: `up` must start embedded ones.
            environment.pop("DATABASE_URL", None)
            environment.pop("REDIS_URL", None)
        self.port = port
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        self.process = subprocess.Popen(
            # The demo pack has its own test (test_load_demo); here only the services matter.
            [sys.executable, "manage.py", "up", "--port", str(port), "--no-demo"],
            cwd=ROOT,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def wait_for(self, text: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            self.output.append(line)
            if text in line:
                return
        pytest.fail(f"`up` never printed {text!r}; output:\n{''.join(self.output)}")

    def healthz(self) -> tuple[int, dict[str, object]]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def family(self) -> list[psutil.Process]:
        return psutil.Process(self.process.pid).children(recursive=True)


def _embedded_pids(var_dir: Path) -> list[int]:
    """Processes of the embedded servers under var_dir that are still alive."""
    return [
        proc.pid
        for proc in psutil.process_iter(["cmdline"])
        if any(str(var_dir) in part for part in (proc.info["cmdline"] or []))
    ]


def _wait_gone(pids: list[int], timeout: float = 30) -> list[int]:
    deadline = time.monotonic() + timeout
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [
            pid
            for pid in alive
            if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        ]
        time.sleep(0.2)
    return alive


@pytest.fixture
def var_dir() -> Iterator[Path]:
    # Not under tmp_path: every pytest session that starts resets /tmp/pytest-of-<user> to mode
    # 0700, which would lock the embedded Postgres (run as its own user) out of its data midway.
    path = Path(tempfile.mkdtemp(prefix="atlas-up-test-")) / "var"
    yield path
    # Never leak servers from a failed test into the rest of the run.
    for pid in _embedded_pids(path):
        psutil.Process(pid).kill()
    shutil.rmtree(path.parent, ignore_errors=True)


def _wait_healthy(up: UpProcess, timeout: float = 60) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        status, body = up.healthz()
        if status == 200 or time.monotonic() > deadline:
            assert status == 200, body
            return body
        time.sleep(0.5)  # the worker may need a moment after the site answers


def test_up_serves_until_sigterm_and_leaves_nothing_running(var_dir: Path) -> None:
    up = UpProcess(var_dir, free_port())
    up.wait_for("Circuit Atlas is up at")
    body = _wait_healthy(up)
    assert body["down"] == []
    assert set(body["components"]) == {"database", "redis", "worker"}  # type: ignore[call-overload]
    children = [child.pid for child in up.family()]
    assert children, "up should run the web server and worker as child processes"

    up.process.send_signal(signal.SIGTERM)
    assert up.process.wait(timeout=60) == 0
    assert _wait_gone(children) == []
    assert _wait_gone(_embedded_pids(var_dir)) == []


def test_a_killed_up_does_not_block_the_next_start_and_data_is_kept(var_dir: Path) -> None:
    port = free_port()
    first = UpProcess(var_dir, port)
    first.wait_for("Circuit Atlas is up at")
    children = [child.pid for child in first.family()]
    first.process.kill()  # no chance to clean up
    first.process.wait(timeout=10)
    # The web server and worker follow their parent down, freeing the port.
    assert _wait_gone(children) == []

    second = UpProcess(var_dir, port)
    second.wait_for("Circuit Atlas is up at")
    _wait_healthy(second)
    if os.environ.get("ATLAS_TEST_EMBEDDED") == "1":
        # The same cluster was reused (adopted from the dead owner), not initialised again.
        assert embedded.EmbeddedPostgres(var_dir).running_url() is not None
    second.process.send_signal(signal.SIGINT)
    assert second.process.wait(timeout=60) == 0
    assert _wait_gone(_embedded_pids(var_dir)) == []


def test_a_port_in_use_gets_one_line_naming_the_port(var_dir: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        up = UpProcess(var_dir, port)
        code = up.process.wait(timeout=120)
        assert up.process.stdout is not None
        time.sleep(0.2)
        lines = []
        while not up.lines.empty():
            lines.append(up.lines.get())
    assert code != 0
    errors = [line for line in lines if "Error" in line or "Traceback" in line]
    assert len(errors) == 1, "".join(lines)
    assert f"port {port} on 127.0.0.1 is already in use" in errors[0]
