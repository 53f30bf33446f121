"""End to end with a real worker process, the real broker and the real database, on a tiny
random Llama on CPU: submit, watch the websocket, open the graph; tokenize; cancel while running;
a duplicated message; a batch."""

from __future__ import annotations

import asyncio
import gzip
import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.layers import channel_layers
from channels.testing.websocket import WebsocketCommunicator
from django.contrib.auth.models import User
from django.db import connections
from django.test import Client
from rest_framework.test import APIClient

from core.celery import app
from features.models import LanguageModel
from graphs.models import Graph, GraphNode
from jobs.dispatch import ATTRIBUTE_TASK
from jobs.models import Job
from tests.jobs.conftest import Worker, job_status, register_model, start_worker, wait_for
from webapp.asgi import application

pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SLUG = "tiny-e2e"
# First job on a fresh worker imports torch and loads the model: generous on a busy machine.
FIRST_JOB_S = 180


@pytest.fixture(scope="module")
def worker(django_db_setup: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    worker = start_worker([f"gpu.{SLUG}"], tmp_path_factory.mktemp("worker"))
    yield worker
    worker.stop()


@pytest.fixture
def tiny(tiny_pack: tuple[Path, Path], transactional_db: None) -> LanguageModel:
    return register_model(SLUG, tiny_pack)


async def in_thread(function: Any, *args: Any, **kwargs: Any) -> Any:
    """Blocking Django work from the scenario, on a thread whose connection is then closed."""

    def call() -> Any:
        try:
            return function(*args, **kwargs)
        finally:
            connections.close_all()

    return await asyncio.to_thread(call)


def run_in_a_new_loop(main: Any) -> Any:
    """``asyncio.run(main)``, then a fresh channel layer for the next loop. The Redis layer is
    cached per process, and its receive lock binds to the first loop that waits on it; a lock
    left held when a loop ends (a consumer cancelled mid-receive as the socket closes) then
    fails the next loop's consumer with "bound to a different event loop" (CI saw it once)."""
    try:
        return asyncio.run(main)
    finally:
        channel_layers.backends.clear()


async def close_consumer_connections() -> None:
    """The consumer's database work runs in asgiref's executor thread, whose connection would
    otherwise stay open and block the test database's teardown."""
    await database_sync_to_async(connections.close_all)()


def session_headers(user: User) -> list[tuple[bytes, bytes]]:
    client = Client()
    client.force_login(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    return [(b"origin", b"http://localhost"), (b"cookie", cookie.encode())]


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Keep the jobs' broker messages back until the returned function sends them, so a test's
    websocket is connected while its job is still queued and sees every event the worker sends
    (not only the final state a late connection catches up from)."""
    messages: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    send = app.send_task
    monkeypatch.setattr(app, "send_task", lambda *args, **kwargs: messages.append((args, kwargs)))

    def release() -> None:
        assert messages, "the request sent no job message"
        for args, kwargs in messages:
            send(*args, **kwargs)
        messages.clear()

    return release


async def follow(websocket: str, user: User, release: Callable[[], None]) -> list[dict[str, Any]]:
    """Every event of a held job: its state on connecting, then, once its message is released
    to the worker, each event until it ends (or FIRST_JOB_S pass)."""
    communicator = WebsocketCommunicator(
        application, websocket, headers=await in_thread(session_headers, user)
    )
    connected, _ = await communicator.connect()
    assert connected
    events = [await communicator.receive_json_from(timeout=10)]
    await in_thread(release)
    deadline = time.monotonic() + FIRST_JOB_S
    while events[-1]["type"] not in {"done", "failed", "cancelled"}:
        try:
            event = await communicator.receive_json_from(
                timeout=max(0.1, deadline - time.monotonic())
            )
        except TimeoutError:
            break
        events.append(event)
    await communicator.disconnect()
    await close_consumer_connections()
    return events


def test_a_submitted_prompt_streams_progress_and_becomes_a_stored_graph(
    worker: Worker,
    tiny: LanguageModel,
    alice: User,
    as_alice: APIClient,
    held: Callable[[], None],
) -> None:
    async def scenario() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        response = await in_thread(
            as_alice.post,
            "/api/v1/graphs/generate",
            {"model": SLUG, "prompt": "w5 w6 w7 w8", "batch_size": 8, "slug": "first-graph",
             "visibility": "unlisted"},
            format="json",
        )  # fmt: skip
        assert response.status_code == 202, response.json()
        job = response.json()
        return job, await follow(job["websocket"], alice, held)

    job, events = run_in_a_new_loop(scenario())
    # In order: the queued state, running, progress through the phases, done.
    types = [event["type"] for event in events]
    progress = events[2:-1]
    assert types == ["state", "running", *["progress"] * len(progress), "done"], (
        events,
        worker.output()[-3000:],
    )
    assert events[0]["status"] == "queued"
    assert all(event["job"] == job["id"] for event in events)
    phases = [event["phase"] for event in progress]
    order = ["loading", "forward", "logits", "features", "storing"]
    assert set(phases) <= set(order), phases
    assert [order.index(p) for p in phases] == sorted(order.index(p) for p in phases)
    assert {"forward", "features", "storing"} <= set(phases)
    # The percent never drops.
    percents = [event["percent"] for event in progress]
    assert percents == sorted(percents)

    row = Job.objects.get(pk=job["id"])
    assert row.status == "succeeded", row.error
    assert row.attempts == 1
    assert row.worker == worker.hostname
    graph = row.graph
    assert graph is not None
    # Not public: the name asked for plus random letters of its own (graphs/services.py).
    assert re.fullmatch(r"first-graph-[a-z]{10}", graph.slug), graph.slug
    assert (graph.visibility, graph.source, graph.owner_id) == (
        "unlisted",
        "generated",
        row.owner_id,
    )
    assert graph.prompt == "w5 w6 w7 w8"
    assert graph.n_features == GraphNode.objects.filter(graph=graph).count() > 0
    assert graph.generation_settings["batch_size"] == 8
    assert graph.pruning_settings == {"node_threshold": 0.8, "edge_threshold": 0.98}

    body = as_alice.get(f"/api/v1/jobs/{job['id']}").json()
    assert body["status"] == "succeeded"
    assert body["percent"] == 100
    assert body["graph"]["slug"] == graph.slug
    artifact = as_alice.get(body["graph"]["artifact_url"])
    assert artifact.status_code == 200
    raw = (
        b"".join(getattr(artifact, "streaming_content", []))
        if artifact.streaming
        else artifact.content
    )
    if artifact.get("Content-Encoding") == "gzip":
        raw = gzip.decompress(raw)
    document = json.loads(raw)
    assert document["metadata"]["slug"] == graph.slug
    assert document["metadata"]["scan"] == SLUG
    assert {node["feature_type"] for node in document["nodes"]} >= {"embedding", "logit"}
    assert document["links"]

    # A page that connects after the end catches up from the row.
    async def late() -> dict[str, Any]:
        communicator = WebsocketCommunicator(
            application, job["websocket"], headers=await in_thread(session_headers, alice)
        )
        await communicator.connect()
        state = await communicator.receive_json_from(timeout=10)
        await communicator.disconnect()
        await close_consumer_connections()
        return state

    state = run_in_a_new_loop(late())
    assert state["type"] == "state"
    assert state["status"] == "succeeded"
    assert state["graph"]["slug"] == graph.slug


def test_someone_else_cannot_follow_a_job(tiny: LanguageModel, alice: User, bob: User) -> None:
    job = Job.objects.create(owner=alice, model=tiny, queue="nowhere", params={"prompt": "w5"})

    async def scenario() -> tuple[bool, Any]:
        communicator = WebsocketCommunicator(
            application,
            f"/ws/jobs/{job.pk}/",
            headers=await in_thread(session_headers, bob),
        )
        connected, _ = await communicator.connect()
        closed = await communicator.receive_output(timeout=5)
        await communicator.disconnect()
        await close_consumer_connections()
        return connected, closed

    # Accepted, then closed with 4404 (a refused handshake would reach browsers as 1006).
    assert run_in_a_new_loop(scenario()) == (True, {"type": "websocket.close", "code": 4404})


def test_tokenize_answers_from_a_worker_and_then_from_the_cache(
    worker: Worker, tiny: LanguageModel, as_alice: APIClient
) -> None:
    body = {"model": SLUG, "prompt": "w5 w6 w7", "top_k": 5}
    first = wait_for(
        lambda: (r := as_alice.post("/api/v1/tokenize", body, format="json")).status_code == 200 and r,
        FIRST_JOB_S, "a tokenize answer", worker,
    )  # fmt: skip
    result = first.json()
    assert [t["text"] for t in result["tokens"]] == ["<bos>", "w5", "w6", "w7"]
    assert result["n_tokens"] == 4
    assert len(result["top"]) == 5
    cumulative = [t["cumulative"] for t in result["top"]]
    assert cumulative == sorted(cumulative)
    assert cumulative[-1] <= 1.0001

    # The second answer comes from the cache: the worker receives no second task.
    def received() -> int:
        return len(re.findall(r"inference\.tokenize\[[^\]]+\] received", worker.output()))

    asked = received()
    again = as_alice.post("/api/v1/tokenize", body, format="json")
    assert again.json() == result
    assert received() == asked > 0


def test_a_running_job_can_be_cancelled(
    worker: Worker, tiny: LanguageModel, as_alice: APIClient
) -> None:
    # batch_size 1: one backward pass per feature, so the job runs long enough to cancel.
    job_id = as_alice.post(
        "/api/v1/graphs/generate",
        {"model": SLUG, "prompt": "w5 w6 w7 w8 w9 w10", "batch_size": 1},
        format="json",
    ).json()["id"]
    wait_for(
        lambda: Job.objects.filter(pk=job_id, status="running", phase="features").exists(),
        FIRST_JOB_S, "the job to reach the features phase", worker,
    )  # fmt: skip
    response = as_alice.post(f"/api/v1/jobs/{job_id}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    # The worker stops at its next batch and takes the next job; nothing is stored.
    follow_up = as_alice.post(
        "/api/v1/graphs/generate", {"model": SLUG, "prompt": "w5 w6"}, format="json"
    ).json()["id"]
    wait_for(lambda: job_status(follow_up, "succeeded"), 60, "the next job", worker)
    cancelled = Job.objects.get(pk=job_id)
    assert cancelled.status == "cancelled"
    assert cancelled.graph is None
    assert Graph.objects.count() == 1


def test_a_message_delivered_twice_makes_one_graph(
    worker: Worker, tiny: LanguageModel, as_alice: APIClient
) -> None:
    job_id = as_alice.post(
        "/api/v1/graphs/generate", {"model": SLUG, "prompt": "w7 w8 w9"}, format="json"
    ).json()["id"]
    # The same message again, as a broker redelivery would: the second claim finds it taken.
    app.send_task(ATTRIBUTE_TASK, args=[job_id], queue=f"gpu.{SLUG}")
    job = wait_for(lambda: job_status(job_id, "succeeded", "failed"), 60, "the job", worker)
    assert job.status == "succeeded", job.error
    app.send_task(ATTRIBUTE_TASK, args=[job_id], queue=f"gpu.{SLUG}")  # and once more, late
    marker = as_alice.post(
        "/api/v1/graphs/generate", {"model": SLUG, "prompt": "w5"}, format="json"
    ).json()["id"]
    wait_for(lambda: job_status(marker, "succeeded", "failed"), 60, "the marker job", worker)
    job.refresh_from_db()
    assert job.attempts == 1
    assert Graph.objects.filter(prompt="w7 w8 w9").count() == 1


def test_a_batch_runs_every_prompt(
    worker: Worker, tiny: LanguageModel, as_alice: APIClient
) -> None:
    batch = as_alice.post(
        "/api/v1/graphs/generate-batch",
        {"model": SLUG, "prompts": ["w5 w6", "w6 w7", "w7 w8"], "max_feature_nodes": 20},
        format="json",
    ).json()
    wait_for(
        lambda: as_alice.get(batch["url"]).json()["counts"] == {"succeeded": 3},
        90, "the batch", worker,
    )  # fmt: skip
    jobs = as_alice.get(batch["url"]).json()["jobs"]
    # Private graphs keep the name asked for plus ten random letters (docs/api.md, Slugs).
    slugs = [job["graph"]["slug"] for job in jobs]
    assert [slug.rsplit("-", 1)[0] for slug in slugs] == ["w5-w6", "w6-w7", "w7-w8"]
    assert all(len(slug.rsplit("-", 1)[1]) == 10 for slug in slugs), slugs


def test_input_only_the_worker_can_check_fails_the_job_readably(
    worker: Worker, tiny: LanguageModel, as_alice: APIClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A web machine without the model's files (its workers elsewhere) cannot tokenize a target,
    # so it queues the job and the worker's own check fails it.
    from jobs import tokens

    monkeypatch.setattr(tokens, "text_tokens", lambda model, text: None)
    job_id = as_alice.post(
        "/api/v1/graphs/generate",
        {"model": SLUG, "prompt": "w5 w6", "target": {"tokens": ["w5 w6"]}},
        format="json",
    ).json()["id"]
    job = wait_for(lambda: job_status(job_id, "failed", "succeeded"), 60, "the job", worker)
    assert job.status == "failed"
    assert (
        job.error == "target.tokens: 'w5 w6' is 2 tokens for this model; give one token (or its id)"
    )


def test_an_intervention_and_a_steered_generation_come_back_over_the_websocket(
    worker: Worker,
    tiny: LanguageModel,
    alice: User,
    as_alice: APIClient,
    held: Callable[[], None],
) -> None:
    """The explorer's Test panel path: POST, follow the job's socket to 'done', GET the run."""
    features = [{"layer": 1, "position": 2, "feature": 3}, {"layer": 2, "feature": 5}]
    requests: dict[str, dict[str, Any]] = {
        "intervene": {"mode": "free", "interventions": [
            {"group": "pair", "features": features, "action": "scale", "value": 3}]},
        "steer": {"n_tokens": 4, "seed": 7, "interventions": [
            {"layer": 0, "feature": 1, "action": "set", "value": 5}]},
    }  # fmt: skip

    async def scenario(path: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        response = await in_thread(
            as_alice.post,
            f"/api/v1/{path}",
            {"model": SLUG, "prompt": "w5 w6 w7 w8", **requests[path]},
            format="json",
        )
        assert response.status_code == 202, response.json()
        run = response.json()
        return run, await follow(run["job"]["websocket"], alice, held)

    for path in ("intervene", "steer"):
        run, events = run_in_a_new_loop(scenario(path))
        types = [event["type"] for event in events]
        assert types == ["state", "running", "progress", "progress", "progress", "done"], (
            events,
            worker.output()[-3000:],
        )
        assert events[0]["status"] == "queued"
        assert [event["phase"] for event in events[2:-1]] == ["loading", "steering", "storing"]
        assert events[-1]["run"] == {"id": run["id"], "url": run["url"]}
        stored = as_alice.get(run["url"]).json()
        assert stored["status"] == "succeeded"
        assert stored["job"]["status"] == "succeeded"
        if path == "intervene":
            assert stored["result"]["logits"]
            assert stored["result"]["activations"]
        else:
            assert len(stored["result"]["steered"]["tokens"]) == 4
