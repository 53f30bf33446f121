"""A real Celery worker takes a task from the real broker and writes to the real database."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest

from core.celery import app
from tests.foundation.conftest import ROOT
from webapp.models import WorkerHeartbeat

pytestmark = [pytest.mark.services, pytest.mark.slow]


def test_a_worker_process_runs_a_task_from_the_broker_and_writes_the_database(
    worker_env: dict[str, str],
) -> None:
    # A queue of its own, so no other worker (a running `manage.py up`) can take the message.
    queue = f"test-{uuid.uuid4().hex[:8]}"
    worker = subprocess.Popen(
        [
            sys.executable, "-m", "celery", "-A", "webapp", "worker",
            "--queues", queue, "--concurrency", "1", "--pool", "solo",
            "--hostname", f"{queue}@test", "--without-gossip", "--without-mingle",
            "--loglevel", "WARNING",
        ],
        cwd=ROOT,
        env=worker_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        result = app.send_task("webapp.probe", args=[queue], queue=queue)
        reply = result.get(timeout=60)
    finally:
        worker.terminate()
        output = worker.communicate(timeout=30)[0].decode(errors="replace")
    assert reply["queue"] == queue, output
    row = WorkerHeartbeat.objects.get(pk=reply["heartbeat_id"])
    assert row.hostname == f"{queue}@test"
    assert row.queue == queue
    assert row.pid != 0
