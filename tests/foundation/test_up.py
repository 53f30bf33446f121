"""`manage.py up` runs everything until SIGTERM and leaves nothing behind, even after a kill -9."""

from __future__ import annotations

import contextlib
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
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.foundation.conftest import ROOT, free_port
from webapp import embedded

# Bounds, not speed checks: `up` migrates a fresh database and collects the static files before it
# says it is up, which takes minutes on 2 loaded cores (CI runs the service tests beside make test).
pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.timeout(900)]


class UpProcess:
    def __init__(self, var_dir: Path, port: int, **extra_env: str) -> None:
        environment = {
            **os.environ,
            "ATLAS_VAR_DIR": str(var_dir),
            "PYTHONUNBUFFERED": "1",
            **extra_env,
        }
        if os.environ.get("ATLAS_TEST_EMBEDDED") == "1":
            # The test run's own servers came from its plugin: `up` must start embedded ones.
            environment.pop("DATABASE_URL", None)
            environment.pop("REDIS_URL", None)
        self.port = port
        self.environment = environment
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
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def wait_for(self, text: str, timeout: float = 300) -> None:
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


@contextlib.contextmanager
def _own_database(server_url: str) -> Iterator[str]:
    """A new, empty database on the given server for one `up`, dropped afterwards.

    `up` migrates and writes the database its DATABASE_URL names, outside pytest-django's test
    database; on a server that outlives the run (CI's, a developer's) rows from an earlier run
    would still be there, and a second `tiny-up` model is a unique-key failure.
    """
    import psycopg
    from psycopg import sql

    name = f"atlas_up_{uuid.uuid4().hex[:12]}"
    base, _, _ = server_url.rpartition("/")
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def var_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    # Not under tmp_path: every pytest session that starts resets /tmp/pytest-of-<user> to mode
    # 0700, which would lock the embedded Postgres (run as its own user) out of its data midway.
    path = Path(tempfile.mkdtemp(prefix="atlas-up-test-")) / "var"
    with contextlib.ExitStack() as stack:
        if os.environ.get("ATLAS_TEST_EMBEDDED") != "1" and "DATABASE_URL" in os.environ:
            database = stack.enter_context(_own_database(os.environ["DATABASE_URL"]))
            monkeypatch.setenv("DATABASE_URL", database)
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
    # A link nobody may open is the site's own 404, not Django's debug page of URL patterns.
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"http://127.0.0.1:{up.port}/graphs/nope/private", timeout=10)
    assert missing.value.code == 404
    page = missing.value.read().decode()
    assert "Nothing here" in page
    assert "URLconf" not in page

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
        up.reader.join(timeout=10)  # it ends at the end of the output: every line is queued
        lines = []
        while not up.lines.empty():
            lines.append(up.lines.get())
    assert code != 0
    errors = [line for line in lines if "Error" in line or "Traceback" in line]
    assert len(errors) == 1, "".join(lines)
    assert f"port {port} on 127.0.0.1 is already in use" in errors[0]


# Run by `manage.py shell` in up's environment (so on up's database): register the tiny model
# whose folder is argv-free (read from the environment), and queue one attribution job for it.
_QUEUE_JOB = """
import os
from types import SimpleNamespace
from django.contrib.auth.models import User
from features.models import LanguageModel, TranscoderSet
from jobs.serializers import GenerateSerializer
from jobs.services import create_attribution_jobs
from tests.engine.builders import D_MODEL, D_TRANSCODER, N_LAYERS, VOCAB
model = LanguageModel.objects.create(
    slug="tiny-up", display_name="Tiny", source=os.environ["TINY_MODEL"], n_layers=N_LAYERS,
    d_model=D_MODEL, vocab_size=VOCAB, max_prompt_tokens=16,
)
model.default_transcoder_set = TranscoderSet.objects.create(
    model=model, slug="plt", feature_input_hook="mlp.hook_in", feature_output_hook="mlp.hook_out",
    features_per_layer=D_TRANSCODER, source=os.environ["TINY_TRANSCODERS"],
)
model.save(update_fields=["default_transcoder_set"])
alice = User.objects.create_user("alice", password="pw-alice-123")
form = GenerateSerializer(
    data={"model": "tiny-up", "prompt": "w5 w6 w7 w8", "slug": "held", "visibility": "public"},
    context={"request": SimpleNamespace(user=alice)},
)
assert form.is_valid(), form.errors
[job] = create_attribution_jobs(
    owner=alice, model=model, transcoder_set=model.default_transcoder_set,
    prompts=["w5 w6 w7 w8"], params=form.job_params(),
)
print(job.id)
"""


def _database_url(up: UpProcess, var_dir: Path) -> str:
    if "DATABASE_URL" in up.environment:
        return up.environment["DATABASE_URL"]
    url = embedded.EmbeddedPostgres(var_dir).running_url()
    assert url is not None
    return url


def _job_row(database_url: str, job_id: str) -> tuple[str, int, int]:
    """(status, attempts, graphs stored for it) of the job, read straight from up's database."""
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT status, attempts, (SELECT count(*) FROM graphs_graph WHERE slug = 'held') "
            "FROM jobs_job WHERE id = %s",
            [job_id],
        ).fetchone()
    assert row is not None
    return str(row[0]), int(row[1]), int(row[2])


def test_a_killed_worker_is_restarted_and_its_job_runs_exactly_once(
    var_dir: Path, tmp_path: Path
) -> None:
    from tests.engine.builders import save_model, save_plt

    # The model's config.json is a FIFO until the test replaces it: a worker that claims the job
    # blocks loading the model, so the kill lands mid-job, deterministically.
    model = save_model("llama", tmp_path / "model")
    config = model / "config.json"
    real_config = config.read_bytes()
    config.unlink()
    os.mkfifo(config)
    transcoders = save_plt(tmp_path / "transcoders")

    up = UpProcess(
        var_dir,
        free_port(),
        TINY_MODEL=str(model),
        TINY_TRANSCODERS=str(transcoders),
        JOBS_HEARTBEAT_TIMEOUT_S="5",
        JOBS_REAP_INTERVAL_S="1",
    )
    try:
        up.wait_for("Circuit Atlas is up at")
        _wait_healthy(up)
        queued = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", _QUEUE_JOB],
            cwd=ROOT, env=up.environment, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert queued.returncode == 0, queued.stderr
        job_id = queued.stdout.strip().splitlines()[-1]
        database_url = _database_url(up, var_dir)
        # The claim includes the worker's own start (Django, torch, transformers), which can
        # take minutes on a loaded CI machine, as the start-up lines above can.
        deadline = time.monotonic() + 300
        while _job_row(database_url, job_id)[0] != "running":
            assert time.monotonic() < deadline, "the worker never claimed the job"
            time.sleep(0.2)

        [worker] = [
            p for p in up.family() if p.ppid() == up.process.pid and "celery" in p.cmdline()
        ]
        worker.kill()
        up.wait_for("worker exited with status -9; restarting it in 1 s (restart 1 in a row)")
        # The site stays up while the worker is down and restarting.
        with urllib.request.urlopen(f"http://127.0.0.1:{up.port}/", timeout=10) as page:
            assert page.status == 200
        up.wait_for("worker restarted")
        tmp = model / "config.tmp"
        tmp.write_bytes(real_config)
        os.replace(tmp, config)  # the re-run loads the model

        deadline = time.monotonic() + 120
        while (row := _job_row(database_url, job_id))[0] not in {"succeeded", "failed"}:
            assert time.monotonic() < deadline, f"the job was not re-run: {row}"
            time.sleep(0.5)
        assert row == ("succeeded", 2, 1)  # re-queued once, run to the end once, one graph
        _wait_healthy(up)
        assert up.process.poll() is None
    finally:
        if config.is_fifo():
            # Unblock a worker still waiting on the FIFO, so it can stop (none waiting: ENXIO).
            with contextlib.suppress(OSError):
                fifo = os.open(config, os.O_WRONLY | os.O_NONBLOCK)
                os.write(fifo, real_config)
                os.close(fifo)
        up.process.send_signal(signal.SIGTERM)
        up.process.wait(timeout=60)
