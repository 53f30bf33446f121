"""The all-in-one local worker (manage.py up) serves models registered after it started."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

from tests.jobs.conftest import job_status, register_model, start_worker, wait_for
from webapp.management.commands import up

pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_up_gives_its_worker_the_queue_of_every_model(
    tiny_pack: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    register_model("tiny-one", tiny_pack)
    register_model("tiny-two", tiny_pack)
    monkeypatch.delenv("JOBS_WORKER_SERVE_ALL_MODELS", raising=False)
    assert up._worker_queues() == ["default", "gpu", "gpu.tiny-one", "gpu.tiny-two"]


def test_a_worker_serving_all_models_picks_up_a_new_model(
    tiny_pack: tuple[Path, Path], as_alice: APIClient, tmp_path: Path, started_workers: list[Any]
) -> None:
    worker = start_worker(["default"], tmp_path, JOBS_WORKER_SERVE_ALL_MODELS="1")
    started_workers.append(worker)
    wait_for(lambda: "ready." in worker.output(), 120, "the worker to start", worker)
    register_model("tiny-late", tiny_pack)
    job_id = as_alice.post(
        "/api/v1/graphs/generate", {"model": "tiny-late", "prompt": "w5 w6"}, format="json"
    ).json()["id"]
    job = wait_for(lambda: job_status(job_id, "succeeded", "failed"), 180, "the job", worker)
    assert job.status == "succeeded", job.error
