"""Dashboards jobs end to end: an upload through the API, a real worker process on the tiny random
Llama, progress on the websocket, every layer imported into the set's features; a cancel after the
first layer keeps only whole layers, and the same request run again continues from the
checkpoint. Plus the layer import's all-or-nothing against a cancel, in process."""

from __future__ import annotations

import io
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db.models import Count
from rest_framework.test import APIClient

from features.models import ActivationExample, Feature, TranscoderSet
from jobs import services
from jobs.dashboards import import_layer
from jobs.models import Job
from tests.engine.builders import D_TRANSCODER, N_LAYERS
from tests.jobs.conftest import Worker, job_status, register_model, start_worker, wait_for
from tests.jobs.test_worker import (  # noqa: F401 (held: a fixture)
    FIRST_JOB_S,
    follow,
    held,
    in_thread,
    run_in_a_new_loop,
)

pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SLUG = "tiny-dash"


def corpus_text(lines: int = 40, seed: int = 0) -> bytes:
    rng = random.Random(seed)
    rows = (
        " ".join(f"w{rng.randrange(4, 48)}" for _ in range(rng.randrange(8, 24)))
        for _ in range(lines)
    )
    return ("\n".join(rows) + "\n").encode()


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """File storage and the worker's folder, the same for the test (the web side) and workers."""
    base = tmp_path_factory.mktemp("dash")
    return {"media": base / "media", "work": base / "work"}


@pytest.fixture
def site(settings: Any, shared: dict[str, Path]) -> dict[str, Path]:
    settings.MEDIA_ROOT = str(shared["media"])
    settings.DASHBOARDS_WORK_DIR = shared["work"]
    return shared


def worker_for(shared: dict[str, Path], tmp: Path, **env: str) -> Worker:
    return start_worker(
        [f"gpu.{SLUG}"],
        tmp,
        MEDIA_ROOT=str(shared["media"]),
        DASHBOARDS_WORK_DIR=str(shared["work"]),
        DASHBOARDS_CHECKPOINT_EVERY="1",
        **env,
    )


@pytest.fixture
def tiny(tiny_pack: tuple[Path, Path], transactional_db: None, alice: User) -> TranscoderSet:
    model = register_model(SLUG, tiny_pack)
    tset = model.default_transcoder_set
    assert tset is not None
    tset.owner = alice
    tset.save(update_fields=["owner"])
    return tset


def submit(client: APIClient, data: bytes, **fields: Any) -> dict[str, Any]:
    handle = io.BytesIO(data)
    handle.name = "corpus.txt"
    response = client.post(
        f"/api/v1/models/{SLUG}/sets/plt/dashboards",
        {"corpus_file": handle, "context": 16, "window": 4, "batch_size": 8, **fields},
        format="multipart",
    )
    assert response.status_code == 202, response.content
    body: dict[str, Any] = response.json()
    return body


def features_by_layer(tset: TranscoderSet) -> dict[int, int]:
    rows = Feature.objects.for_set(tset).values("layer").annotate(n=Count("id"))
    return {row["layer"]: row["n"] for row in rows}


def test_an_uploaded_corpus_becomes_every_layers_dashboards(
    tiny: TranscoderSet,
    alice: User,
    as_alice: APIClient,
    site: dict[str, Path],
    held: Callable[[], None],  # noqa: F811
    tmp_path: Path,
) -> None:
    worker = worker_for(site, tmp_path)
    try:

        async def scenario() -> tuple[dict[str, Any], list[dict[str, Any]]]:
            job = await in_thread(submit, as_alice, corpus_text(), top_k=5)
            return job, await follow(job["websocket"], alice, held)

        job, events = run_in_a_new_loop(scenario())
    finally:
        worker.stop()
    types = [event["type"] for event in events]
    assert types[:2] == ["state", "running"], (events, worker.output())
    assert types[-1] == "done", (events, worker.output())
    phases = [event["phase"] for event in events if event["type"] == "progress"]
    assert {"activations", "examples", "outputs"} <= set(phases), phases
    percents = [event["percent"] for event in events if event["type"] == "progress"]
    assert percents == sorted(percents)
    row = Job.objects.get(pk=job["id"])
    assert row.status == "succeeded", row.error
    assert row.result == {"layers": [0, 1, 2], "features": N_LAYERS * D_TRANSCODER}
    assert features_by_layer(tiny) == dict.fromkeys(range(N_LAYERS), D_TRANSCODER)
    firing = Feature.objects.for_set(tiny).filter(density__gt=0)
    assert firing.exists()
    top = ActivationExample.objects.filter(feature__in=firing, quantile="Top activations")
    assert top.exists(), set(ActivationExample.objects.values_list("quantile", flat=True))
    assert all(len(e.tokens) <= 2 * 4 + 1 for e in top)
    # Done: no checkpoint and no layer files are left behind.
    assert not list((site["work"] / "checkpoints").iterdir())
    assert not (site["work"] / "runs" / job["id"]).exists()


def test_a_cancel_after_the_first_layer_keeps_whole_layers_and_a_rerun_continues(
    tiny: TranscoderSet,
    alice: User,
    as_alice: APIClient,
    site: dict[str, Path],
    held: Callable[[], None],  # noqa: F811
    tmp_path: Path,
) -> None:
    worker = worker_for(site, tmp_path, TEST_JOBS_LAYER_DELAY_S="3")
    try:
        data = corpus_text(seed=1)
        job = submit(as_alice, data)
        held()
        wait_for(
            lambda: (Job.objects.get(pk=job["id"]).result or {}).get("layers"),
            FIRST_JOB_S,
            "the first layer's import",
            worker,
        )
        assert as_alice.post(f"/api/v1/jobs/{job['id']}/cancel").status_code == 200
        wait_for(lambda: job_status(job["id"], "cancelled"), 30, "the cancel", worker)
        cancelled = Job.objects.get(pk=job["id"])
        kept = (cancelled.result or {}).get("layers", [])
        assert 1 <= len(kept) < N_LAYERS
        # Only whole layers: each imported layer has every feature, the others none.
        assert features_by_layer(tiny) == dict.fromkeys(kept, D_TRANSCODER)
        checkpoints = list((site["work"] / "checkpoints").iterdir())
        assert len(checkpoints) == 1
        # The same upload again resumes from the checkpoint (the corpus was streamed: its
        # first progress is the end of streaming), which it then removes.
        again = submit(as_alice, data)
        events = run_in_a_new_loop(follow(again["websocket"], alice, held))
    finally:
        worker.stop()
    rerun = Job.objects.get(pk=again["id"])
    assert rerun.status == "succeeded", (rerun.error, worker.output()[-3000:])
    assert again["params"]["corpus"] == job["params"]["corpus"]
    streamed = [e["percent"] for e in events if e.get("phase") == "activations"]
    assert streamed, events
    assert streamed[0] >= 79.9, events
    assert not checkpoints[0].exists()
    assert features_by_layer(tiny) == dict.fromkeys(range(N_LAYERS), D_TRANSCODER)


@pytest.fixture
def claimed(tiny: TranscoderSet, alice: User) -> services.Run:
    (job,) = services.create_jobs(
        kind=Job.Kind.DASHBOARDS,
        owner=alice,
        model=tiny.model,
        transcoder_set=tiny,
        params=[{"corpus": "x", "corpus_source": "path"}],
    )
    run = services.claim(str(job.id), "test")
    assert run is not None
    return services.Run(run)


def write_layer_file(path: Path, layer: int) -> Path:
    import gzip
    import json

    features = [
        {"index": i, "act_max": 1.0, "activation_frequency": 0.1, "examples_quantiles": []}
        for i in range(D_TRANSCODER)
    ]
    file = path / f"layer_{layer}.jsonl.gz"
    file.write_bytes(gzip.compress("".join(json.dumps(f) + "\n" for f in features).encode()))
    return file


def test_a_layer_imported_after_a_cancel_leaves_nothing(
    claimed: services.Run, tiny: TranscoderSet, tmp_path: Path
) -> None:
    assert import_layer(claimed, write_layer_file(tmp_path, 0), 0) == D_TRANSCODER
    assert services.cancel(claimed.job)
    with pytest.raises(services.JobLost):
        import_layer(claimed, write_layer_file(tmp_path, 1), 1)
    assert features_by_layer(tiny) == {0: D_TRANSCODER}
    assert Job.objects.get(pk=claimed.job.pk).result == {"layers": [0], "features": D_TRANSCODER}
