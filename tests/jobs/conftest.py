"""Fixtures for the job tests: a tiny random Llama with random transcoders saved to disk (what
a worker loads), its rows, and real Celery worker processes on the test database."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from features.models import LanguageModel, TranscoderSet
from jobs.models import Job
from tests.processes import child_env

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def tiny_pack(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(model folder, transcoder config.yaml) of a 3-layer random Llama, built once per run."""
    from tests.engine.builders import save_model, save_plt

    folder = tmp_path_factory.mktemp("tiny-pack")
    model = save_model("llama", folder / "model")
    config = save_plt(folder / "transcoders")
    return model, config


def register_model(
    slug: str, pack: tuple[Path, Path], max_prompt_tokens: int = 16
) -> LanguageModel:
    from tests.engine.builders import D_MODEL, D_TRANSCODER, N_LAYERS, VOCAB

    model_path, config = pack
    model = LanguageModel.objects.create(
        slug=slug,
        display_name=f"Tiny {slug}",
        source=str(model_path),
        n_layers=N_LAYERS,
        d_model=D_MODEL,
        vocab_size=VOCAB,
        max_prompt_tokens=max_prompt_tokens,
    )
    model.default_transcoder_set = TranscoderSet.objects.create(
        model=model,
        slug="plt",
        feature_input_hook="mlp.hook_in",
        feature_output_hook="mlp.hook_out",
        features_per_layer=D_TRANSCODER,
        source=str(config),
    )
    model.save(update_fields=["default_transcoder_set"])
    return model


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    hostname: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def kill(self) -> None:
        """SIGKILL the worker and its pool children at once, as a crashed machine would."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # pool children that outlived it


def start_worker(queues: list[str], tmp_path: Path, **env: str) -> Worker:
    """A real worker process (prefork pool of one, as on a GPU machine) on the test database."""
    hostname = f"test-{uuid.uuid4().hex[:6]}@jobs"
    log = tmp_path / f"{hostname.split('@')[0]}.log"
    environment = child_env(
        JOBS_HEARTBEAT_INTERVAL_S="1",
        JOBS_HEARTBEAT_TIMEOUT_S="5",
        JOBS_REAP_INTERVAL_S="1",
        JOBS_PROGRESS_INTERVAL_MS="0",
        **env,
    )
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "celery", "-A", "tests.jobs.worker_app", "worker",
                "--queues", ",".join(queues), "--concurrency", "1", "--pool", "prefork",
                "--hostname", hostname, "--without-gossip", "--without-mingle",
                "--without-heartbeat", "--loglevel", "INFO",
            ],
            cwd=ROOT,
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    return Worker(process, hostname, log)


def wait_for(
    condition: Callable[[], Any], timeout: float, what: str, worker: Worker | None = None
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    tail = worker.output()[-4000:] if worker is not None else ""
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}\n{tail}")


def job_status(job_id: Any, *statuses: str) -> Job | None:
    job = Job.objects.filter(pk=job_id).first()
    return job if job is not None and job.status in statuses else None


@pytest.fixture
def started_workers(tmp_path: Path) -> Iterator[list[Worker]]:
    workers: list[Worker] = []
    yield workers
    for worker in workers:
        worker.stop()
