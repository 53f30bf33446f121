"""Failures are handled, not hidden: a worker killed mid-job, stale heartbeats, fencing, claims."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from features.models import LanguageModel
from jobs import dispatch, services
from jobs.models import Job
from tests.jobs.conftest import job_status, register_model, start_worker, wait_for


def stale_running_job(owner: User, model: LanguageModel, attempts: int) -> Job:
    return Job.objects.create(
        owner=owner,
        model=model,
        transcoder_set=model.default_transcoder_set,
        queue=dispatch.queue_for(model),
        params={"prompt": "w5 w6"},
        status=Job.Status.RUNNING,
        attempts=attempts,
        worker="dead@gpu-3",
        heartbeat_at=timezone.now() - timedelta(minutes=5),
    )


@pytest.fixture
def tiny(tiny_pack: tuple[Path, Path], db: None) -> LanguageModel:
    return register_model("tiny-failures", tiny_pack)


@pytest.mark.django_db
def test_a_job_whose_worker_died_is_requeued_once(
    alice: User, tiny: LanguageModel, sent: list[Job]
) -> None:
    job = stale_running_job(alice, tiny, attempts=1)
    assert services.reap() == {"requeued": 1, "failed": 0}
    job.refresh_from_db()
    assert (job.status, job.worker, job.heartbeat_at) == ("queued", "", None)
    assert "dead@gpu-3 stopped responding during attempt 1" in job.error
    assert [message.pk for message in sent] == [job.pk]
    # The next worker's claim is attempt 2 and clears the note.
    claimed = services.claim(str(job.pk), "alive@gpu-4")
    assert claimed is not None
    assert (claimed.attempts, claimed.error) == (2, "")


@pytest.mark.django_db
def test_a_job_out_of_attempts_fails_with_a_readable_message(
    alice: User, tiny: LanguageModel, sent: list[Job]
) -> None:
    job = stale_running_job(alice, tiny, attempts=2)
    assert services.reap() == {"requeued": 0, "failed": 1}
    job.refresh_from_db()
    assert job.status == "failed"
    assert job.error == (
        "the worker running this job (dead@gpu-3) stopped responding (attempt 2 of 2); "
        "try again later"
    )
    assert sent == []


@pytest.mark.django_db
def test_a_live_job_is_left_alone(alice: User, tiny: LanguageModel, sent: list[Job]) -> None:
    job = stale_running_job(alice, tiny, attempts=1)
    Job.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now())
    assert services.reap() == {"requeued": 0, "failed": 0}
    assert Job.objects.get(pk=job.pk).status == "running"


@pytest.mark.django_db
@override_settings(JOBS_MAX_ATTEMPTS=1)
def test_reading_a_job_whose_worker_died_reaps_it_even_with_no_worker_alive(
    alice: User, tiny: LanguageModel, sent: list[Job], as_alice: APIClient
) -> None:
    job = stale_running_job(alice, tiny, attempts=1)
    body = as_alice.get(f"/api/v1/jobs/{job.pk}").json()
    assert body["status"] == "failed"
    assert "stopped responding" in body["error"]


@pytest.mark.django_db
def test_a_requeued_run_can_no_longer_write_to_its_job(
    alice: User, tiny: LanguageModel, sent: list[Job]
) -> None:
    """The fencing token: the stalled first run comes back after the reaper gave its job away."""
    Job.objects.create(
        owner=alice, model=tiny, queue="q", params={"prompt": "w5"}, transcoder_set=None
    )
    job = Job.objects.get()
    first = services.claim(str(job.pk), "slow@gpu-1")
    assert first is not None
    run = services.Run(first)
    Job.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=5))
    services.reap()
    second = services.claim(str(job.pk), "fast@gpu-2")
    assert second is not None
    assert second.attempts == 2

    run.progress("features", 0.5)
    assert run.should_stop()
    assert not run.fail("too late")
    assert Job.objects.get(pk=job.pk).status == "running"
    assert Job.objects.get(pk=job.pk).worker == "fast@gpu-2"


@pytest.mark.django_db
def test_a_second_claim_of_the_same_job_does_nothing(alice: User, tiny: LanguageModel) -> None:
    job = Job.objects.create(owner=alice, model=tiny, queue="q", params={"prompt": "w5"})
    assert services.claim(str(job.pk), "a@w") is not None
    assert services.claim(str(job.pk), "b@w") is None
    assert services.claim("not-a-uuid", "b@w") is None
    assert Job.objects.get(pk=job.pk).attempts == 1


@pytest.mark.django_db
@override_settings(JOBS_PROGRESS_INTERVAL_MS=60_000)
def test_progress_writes_the_row_once_per_interval_and_sends_an_event_per_phase(
    alice: User, tiny: LanguageModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = Job.objects.create(owner=alice, model=tiny, queue="q", params={"prompt": "w5"})
    claimed = services.claim(str(job.pk), "a@w")
    assert claimed is not None
    run = services.Run(claimed)
    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(services, "_emit", lambda job, event: sent.append(event))
    with CaptureQueriesContext(connection) as queries:
        for i in range(100):
            run.progress("features", i / 100)
        run.progress("storing", 0.0)
    # One interval: the first report is written; the phase change is sent but not written.
    writes = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
    assert len(writes) == 1, writes
    start = services.overall_percent("features", 0.0)
    assert [(e["phase"], e["percent"]) for e in sent] == [
        ("features", start),
        ("storing", services.overall_percent("storing", 0.0)),
    ]
    job.refresh_from_db()
    assert (job.phase, job.percent) == ("features", start)


@pytest.mark.services
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_job_leaves_the_job_rerun_within_a_minute(
    tiny_pack: tuple[Path, Path], as_alice: APIClient, tmp_path: Path, started_workers: list[Any]
) -> None:
    register_model("tiny-kill", tiny_pack)
    doomed = start_worker(["gpu.tiny-kill"], tmp_path, TEST_JOBS_PROGRESS_DELAY_S="0.3")
    started_workers.append(doomed)
    job_id = as_alice.post(
        "/api/v1/graphs/generate",
        {"model": "tiny-kill", "prompt": "w5 w6 w7 w8", "batch_size": 4},
        format="json",
    ).json()["id"]
    wait_for(
        lambda: Job.objects.filter(pk=job_id, status="running", phase="features").exists(),
        180, "the job to reach the features phase", doomed,
    )  # fmt: skip
    doomed.kill()
    killed_at = time.monotonic()
    assert Job.objects.get(pk=job_id).status == "running"

    # Another worker (or the same machine restarted) serves the queue; its reaper finds the
    # stale heartbeat and re-queues the job once, and it runs to the end.
    rescuer = start_worker(["gpu.tiny-kill"], tmp_path)
    started_workers.append(rescuer)
    requeued = wait_for(
        lambda: Job.objects.filter(pk=job_id, attempts=2).exists()
        or job_status(job_id, "queued", "failed", "succeeded"),
        60, "the job to be re-queued", rescuer,
    )  # fmt: skip
    assert requeued
    assert time.monotonic() - killed_at < 60
    job = wait_for(lambda: job_status(job_id, "succeeded", "failed"), 120, "the re-run", rescuer)
    assert job.status == "succeeded", job.error
    assert job.attempts == 2
    assert job.worker == rescuer.hostname
    assert job.graph is not None


@pytest.mark.django_db
def test_running_out_of_gpu_memory_fails_the_job_with_the_readable_message(
    alice: User, tiny: LanguageModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    from inference import tasks

    def no_memory(*_: Any) -> None:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(tasks, "load_model", no_memory)
    job = Job.objects.create(
        owner=alice, model=tiny, transcoder_set=tiny.default_transcoder_set, queue="q",
        params={"prompt": "w5"},
    )  # fmt: skip
    assert tasks.run_job(str(job.pk), "gpu@w") == "failed"
    job.refresh_from_db()
    assert job.status == "failed"
    assert job.error == (
        "this prompt needs more GPU memory than this worker has; "
        "try fewer tokens or a lower max_feature_nodes"
    )


@pytest.mark.django_db
def test_an_unexpected_error_fails_the_job_and_names_it(
    alice: User, tiny: LanguageModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    from inference import tasks

    def broken(*_: Any) -> None:
        raise KeyError("W_enc")

    monkeypatch.setattr(tasks, "load_model", broken)
    job = Job.objects.create(
        owner=alice, model=tiny, transcoder_set=tiny.default_transcoder_set, queue="q",
        params={"prompt": "w5"},
    )  # fmt: skip
    assert tasks.run_job(str(job.pk), "gpu@w") == "failed"
    job.refresh_from_db()
    assert job.error == "internal error while generating the graph (KeyError: 'W_enc')"


@pytest.mark.django_db
def test_tokenize_tells_a_broken_model_apart_from_a_bad_prompt(
    alice: User, tiny: LanguageModel, as_alice: APIClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from inference import tasks
    from jobs import tokens

    LanguageModel.objects.filter(pk=tiny.pk).update(source="/nonexistent/model")
    answer = tasks.tokenize(tiny.pk, "w5")
    assert answer["error"].startswith("the worker could not tokenize this prompt (ModelLoadError")
    assert "field" not in answer
    monkeypatch.setattr(tokens, "tokenize", lambda *_: answer)
    response = as_alice.post(
        "/api/v1/tokenize", {"model": tiny.slug, "prompt": "w5"}, format="json"
    )
    assert response.status_code == 503
    monkeypatch.setattr(tokens, "tokenize", lambda *_: {"error": "bad", "field": "prompt"})
    response = as_alice.post(
        "/api/v1/tokenize", {"model": tiny.slug, "prompt": "w5"}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["detail"] == {"prompt": "bad"}


@pytest.mark.services
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_job_past_its_models_soft_time_limit_fails_readably(
    tiny_pack: tuple[Path, Path], as_alice: APIClient, tmp_path: Path, started_workers: list[Any]
) -> None:
    register_model("tiny-slow", tiny_pack)
    # Every progress report pauses 0.5 s, so a job surely outlives a 2 s limit however fast
    # the machine is (a job makes at least six reports).
    worker = start_worker(["gpu.tiny-slow"], tmp_path, TEST_JOBS_PROGRESS_DELAY_S="0.5")
    started_workers.append(worker)
    # A warm worker first: the limit covers the whole task, imports of a fresh worker included.
    warm_up = as_alice.post(
        "/api/v1/graphs/generate", {"model": "tiny-slow", "prompt": "w5"}, format="json"
    ).json()["id"]
    wait_for(lambda: job_status(warm_up, "succeeded"), 180, "a warm worker", worker)
    with override_settings(JOBS_TIME_LIMITS={"tiny-slow": (2, 60)}):
        job_id = as_alice.post(
            "/api/v1/graphs/generate",
            {"model": "tiny-slow", "prompt": "w5 w6 w7 w8 w9 w10", "batch_size": 1},
            format="json",
        ).json()["id"]
    job = wait_for(lambda: job_status(job_id, "failed", "succeeded"), 120, "the job", worker)
    assert job.status == "failed"
    assert job.error == (
        "the job took longer than the 2 s this model allows; "
        "try fewer tokens or a lower max_feature_nodes"
    )
