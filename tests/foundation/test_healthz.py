"""/healthz: 200 when database, Redis and a worker are up; 503 naming what is down."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from django.test import Client, override_settings

from tests.foundation.conftest import ROOT
from webapp.models import WorkerHeartbeat

pytestmark = pytest.mark.django_db


@pytest.mark.services
def test_it_names_the_worker_when_none_answers() -> None:
    # The test broker has no worker listening (tests start their own only when they need one).
    response = Client().get("/healthz")
    body = response.json()
    assert response.status_code == 503
    assert body["down"] == ["worker"]
    assert body["components"]["database"]["ok"] is True
    assert body["components"]["redis"]["ok"] is True
    assert "no Celery worker answered" in body["components"]["worker"]["error"]


def test_it_names_redis_when_redis_is_unreachable() -> None:
    with override_settings(REDIS_URL="redis://127.0.0.1:1/0"):
        response = Client().get("/healthz")
    body = response.json()
    assert response.status_code == 503
    assert "redis" in body["down"]
    assert body["components"]["database"]["ok"] is True
    assert response["Cache-Control"].startswith("max-age=0")


@pytest.mark.services
@pytest.mark.slow
def test_deep_check_sends_a_probe_through_the_default_queue(worker_env: dict[str, str]) -> None:
    worker = subprocess.Popen(
        [
            sys.executable, "-m", "celery", "-A", "webapp", "worker",
            "--queues", "default", "--concurrency", "1", "--pool", "solo",
            "--hostname", "deep-probe@test", "--without-gossip", "--without-mingle",
            "--loglevel", "WARNING",
        ],
        cwd=ROOT,
        env=worker_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            response = Client().get("/healthz?deep=1")
            if response.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.5)  # the worker is still starting
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    body = response.json()
    assert response.status_code == 200, body
    assert body["components"]["queue"]["probe"]["hostname"] == "deep-probe@test"
    assert WorkerHeartbeat.objects.filter(hostname="deep-probe@test", queue="default").exists()
