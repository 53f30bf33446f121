"""The explain job: validation, the default queue, and real workers running it with the
token-pattern method and with an LLM (a real local chat-completions server with scripted
answers, standing in for an external LLM service)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from features.models import Explanation, Feature, LanguageModel, TranscoderSet
from graphs.models import Graph, GraphNode
from jobs.models import Job
from tests.autointerp.chat_server import ChatServer, serve
from tests.autointerp.stored import add_feature
from tests.autointerp.synthetic import feature, on_token
from tests.autointerp.test_llm import knows_austin
from tests.jobs.conftest import Worker, job_status, start_worker, wait_for

AUSTIN = feature(on_token(" Austin"), [(" Austin",)])
HOUSTON = feature(on_token(" Houston"), [(" Houston",)], seed=1)


@pytest.fixture
def tset(db: None) -> TranscoderSet:
    lm = LanguageModel.objects.create(
        slug="tiny", display_name="Tiny", n_layers=4, d_model=16, vocab_size=100
    )
    ts = TranscoderSet.objects.create(model=lm, slug="plt", features_per_layer=1000)
    lm.default_transcoder_set = ts
    lm.save(update_fields=["default_transcoder_set"])
    return ts


@pytest.fixture
def cities(tset: TranscoderSet) -> list[Feature]:
    return [add_feature(tset, 1, 7, AUSTIN), add_feature(tset, 1, 8, HOUSTON)]


def explain(client: APIClient, **body: Any) -> Any:
    return client.post("/api/v1/explain", {"model": "tiny", **body}, format="json")


# Requests -------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({}, "features", "exactly one of"),
        ({"layer": 1, "whole_set": True}, "features", "exactly one of"),
        ({"layer": 9}, "layer", "layers 0..3"),
        ({"features": []}, "features", "at least one"),
        ({"graph": "nope"}, "graph", "no graph 'nope'"),
        ({"layer": 1, "method": "llm"}, "method", "EXPLAINER_BASE_URL"),
        ({"layer": 1, "method": "oracle"}, "method", "not a valid choice"),
        ({"layer": 1, "colour": "red"}, "colour", "unknown field"),
    ],
)
def test_bad_requests_name_the_field(
    as_alice: APIClient, tset: TranscoderSet, body: dict[str, Any], field: str, message: str
) -> None:
    response = explain(as_alice, **body)
    assert response.status_code == 400, response.content
    assert message in str(response.json()["detail"][field])


@pytest.mark.django_db
def test_llm_jobs_are_for_staff(as_alice: APIClient, tset: TranscoderSet, settings: Any) -> None:
    settings.EXPLAINER_BASE_URL, settings.EXPLAINER_MODEL = "http://127.0.0.1:9/v1", "m"
    response = explain(as_alice, layer=1, method="llm")
    assert response.status_code == 400
    assert "staff" in str(response.json()["detail"]["method"])


@pytest.mark.django_db
def test_a_graphs_features_go_to_the_default_queue_never_a_gpu_queue(
    as_alice: APIClient,
    alice: User,
    cities: list[Feature],
    sent: list[Job],
    django_capture_on_commit_callbacks: Any,
) -> None:
    graph = Graph.objects.create(
        model=cities[0].transcoder_set.model, slug="g", owner=alice, visibility="public"
    )
    for n, f in enumerate(cities):
        GraphNode.objects.create(
            graph=graph, node_id=f"{f.layer}_{f.index}_{n}", layer=f.layer, position=n,
            feature_index=f.index,
        )  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        response = explain(as_alice, graph="g")
    assert response.status_code == 202, response.content
    job = Job.objects.get()
    assert (job.kind, job.queue) == ("explain", "default")
    assert job.params["features"] == [[1, 7], [1, 8]]
    assert sent == [job]


# Real workers ---------------------------------------------------------------------------------


def run_job(tmp_path: Path, workers: list[Worker], job: Job, **env: str) -> Job:
    worker = start_worker(["default"], tmp_path, **env)
    workers.append(worker)
    finished = wait_for(
        lambda: job_status(job.pk, *Job.FINISHED), timeout=120, what="the job", worker=worker
    )
    assert isinstance(finished, Job)
    return finished


def queue(tset: TranscoderSet, owner: User, **params: Any) -> Job:
    from jobs import services

    (job,) = services.create_jobs(
        kind=Job.Kind.EXPLAIN,
        owner=owner,
        model=tset.model,
        transcoder_set=tset,
        params=[{"method": "token-pattern", **params}],
    )
    return job


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_worker_explains_a_layer_and_a_rerun_skips_what_is_done(
    tmp_path: Path, started_workers: list[Worker], cities: list[Feature], alice: User
) -> None:
    tset = cities[0].transcoder_set
    job = run_job(tmp_path, started_workers, queue(tset, alice, layer=1))
    assert job.status == "succeeded", job.error
    assert job.percent == 100.0
    # Two features explained; their two silent-window dashboards are explained too.
    assert job.result is not None
    assert job.result["explained"] == 4
    texts = dict(Explanation.objects.values_list("feature__index", "text"))
    assert texts[7] == 'fires on " Austin"'
    assert texts[8] == 'fires on " Houston"'
    again = run_job(tmp_path, started_workers, queue(tset, alice, layer=1))
    assert again.result is not None
    assert (again.result["explained"], again.result["skipped"]) == (0, 4)


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_worker_explains_with_an_llm_and_records_its_usage_but_never_its_key(
    tmp_path: Path, started_workers: list[Worker], cities: list[Feature], alice: User
) -> None:
    tset = cities[0].transcoder_set
    with serve(ChatServer(knows_austin, api_key="sk-test-secret")) as server:
        job = run_job(
            tmp_path,
            started_workers,
            queue(tset, alice, method="llm", features=[[1, 7]]),
            EXPLAINER_BASE_URL=server.url,
            EXPLAINER_MODEL="scripted",
            EXPLAINER_API_KEY="sk-test-secret",
        )
    assert job.status == "succeeded", job.error
    found = Explanation.objects.get(feature=cities[0])
    assert (found.text, found.method, found.model) == ("the word Austin", "llm", "scripted")
    assert found.score == pytest.approx(1.0)
    assert found.usage is not None
    assert found.usage["requests"] == len(server.requests)
    stored = [str(job.params), str(job.result), job.error, str(found.scores), str(found.details)]
    assert not any("sk-test-secret" in text for text in stored)
    assert "sk-test-secret" not in started_workers[0].output()


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_an_endpoint_that_stops_answering_fails_the_job_and_keeps_what_was_finished(
    tmp_path: Path, started_workers: list[Worker], tset: TranscoderSet, alice: User
) -> None:
    features = [
        add_feature(tset, 2, i, feature(on_token(" Austin"), [(" Austin",)])) for i in range(3)
    ]
    # Requests per feature: the explanation, a simulation of each of the 9 held-out activating
    # and 5 silent examples, detection, fuzzing.
    per_feature = 1 + 9 + 5 + 2
    server = ChatServer(knows_austin, refuse_after=2 * per_feature)
    with serve(server):
        job = run_job(
            tmp_path,
            started_workers,
            queue(tset, alice, method="llm", features=[[2, f.index] for f in features]),
            EXPLAINER_BASE_URL=server.url,
            EXPLAINER_MODEL="scripted",
            EXPLAINER_API_KEY="right-key",
            EXPLAINER_CONCURRENCY="1",
        )
    assert job.status == "failed"
    assert "refused the API key" in job.error
    assert "run the job again to continue" in job.error
    # Concurrency 1 explains two features per chunk: the first chunk was stored.
    assert Explanation.objects.filter(method="llm").count() == 2
