"""The jobs API without a worker: validation, limits, visibility, cancel, batches."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import override_settings
from rest_framework.test import APIClient

from features.models import LanguageModel
from graphs.models import Graph
from jobs import services
from jobs.models import Job
from tests.conftest import client_for
from tests.jobs.conftest import register_model

pytestmark = [pytest.mark.django_db]


@pytest.fixture(autouse=True)
def no_broker(sent: list[Job]) -> list[Job]:
    """These tests need no worker: every one records what would be sent (tests/conftest.py)."""
    return sent


@pytest.fixture
def tiny(tiny_pack: tuple[Path, Path]) -> LanguageModel:
    return register_model("tiny-api", tiny_pack)


def generate(client: APIClient, **body: Any) -> Any:
    return client.post("/api/v1/graphs/generate", body, format="json")


def valid(**changes: Any) -> dict[str, Any]:
    return {"model": "tiny-api", "prompt": "w5 w6 w7", **changes}


def test_it_queues_a_job_and_answers_202_with_its_url(
    as_alice: APIClient,
    tiny: LanguageModel,
    no_broker: list[Job],
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = generate(as_alice, **valid(max_feature_nodes=100, visibility="unlisted"))
    assert response.status_code == 202, response.json()
    body = response.json()
    assert body["status"] == "queued"
    assert body["position"] == 1
    assert response["Location"] == body["url"] == f"/api/v1/jobs/{body['id']}"
    assert body["websocket"] == f"/ws/jobs/{body['id']}/"
    job = Job.objects.get(pk=body["id"])
    assert job.queue == "gpu.tiny-api"
    assert job.transcoder_set == tiny.default_transcoder_set
    assert job.params["max_feature_nodes"] == 100
    assert job.params["visibility"] == "unlisted"
    assert [sent.pk for sent in no_broker] == [job.pk]


def test_the_message_is_sent_only_after_the_transaction_commits(
    as_alice: APIClient,
    tiny: LanguageModel,
    no_broker: list[Job],
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        generate(as_alice, **valid())
    assert no_broker == []
    assert len(callbacks) == 1


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"model": "no-such-model"}, "model"),
        ({"prompt": "w5 " * 10_000}, "prompt"),
        ({"prompt": "w5 w6 w7 w8 w9 w10 w11 w12 w13 w14 w15 w16 w17 w18 w19 w20"}, "prompt"),
        ({"prompt": "   "}, "prompt"),
        ({"node_threshold": 1.5}, "node_threshold"),
        ({"edge_threshold": -0.1}, "edge_threshold"),
        ({"desired_logit_prob": 0}, "desired_logit_prob"),
        ({"desired_logit_prob": "NaN"}, "desired_logit_prob"),
        ({"max_n_logits": 0}, "max_n_logits"),
        ({"max_feature_nodes": 10**9}, "max_feature_nodes"),
        ({"batch_size": 0}, "batch_size"),
        ({"visibility": "everyone"}, "visibility"),
        ({"slug": "Not A Slug!"}, "slug"),
        ({"transcoder_set": "nope"}, "transcoder_set"),
        ({"target": {"tokens": []}}, "target.tokens"),
        ({"target": {"logit_diff": [5]}}, "target.logit_diff"),
        ({"target": {"logit_diff": [5, 10_000]}}, "target.logit_diff[1]"),
        ({"target": {"tokens": ["w5"], "logit_diff": [5, 6]}}, "target.non_field_errors"),
        ({"target": "w5"}, "target"),
        ({"target": {"tokens": ["w\x00"]}}, "target.tokens[0]"),
        ({"prompt": "w5\x00w6"}, "prompt"),
        ({"title": "x" * 201}, "title"),
        ({"max_features": 10}, "max_features"),
    ],
)
def test_bad_requests_get_400_naming_the_field(
    as_alice: APIClient, tiny: LanguageModel, changes: dict[str, Any], field: str
) -> None:
    response = generate(as_alice, **valid(**changes))
    assert response.status_code == 400, response.json()
    body = response.json()
    assert field in body["detail"], body
    assert body["error"]
    assert not Job.objects.exists()


@pytest.mark.parametrize("body", [[], "text", [1, 2], {"prompt": None, "model": 3}])
def test_malformed_bodies_get_400(as_alice: APIClient, tiny: LanguageModel, body: Any) -> None:
    response = as_alice.post("/api/v1/graphs/generate", body, format="json")
    assert response.status_code == 400


def test_a_slug_already_taken_is_refused(as_alice: APIClient, tiny: LanguageModel) -> None:
    Graph.objects.create(
        model=tiny, slug="mine", prompt="x", artifact="graphs/x.json.gz", visibility="public"
    )
    response = generate(as_alice, **valid(slug="mine", visibility="public"))
    assert response.status_code == 400
    assert "already has a graph" in response.json()["detail"]["slug"]


def test_a_slug_reserved_by_a_queued_job_is_refused(
    as_alice: APIClient, tiny: LanguageModel
) -> None:
    assert generate(as_alice, **valid(slug="first", visibility="public")).status_code == 202
    assert generate(as_alice, **valid(slug="first", visibility="public")).status_code == 400


def test_anonymous_callers_cannot_generate(tiny: LanguageModel) -> None:
    response = generate(APIClient(), **valid())
    assert response.status_code == 401


def test_a_private_model_is_unknown_to_users(as_alice: APIClient, tiny: LanguageModel) -> None:
    LanguageModel.objects.filter(pk=tiny.pk).update(visibility="private")
    response = generate(as_alice, **valid())
    assert response.status_code == 400
    assert "model" in response.json()["detail"]


@override_settings(JOBS_MAX_ACTIVE_PER_USER=2)
def test_a_user_cannot_queue_more_than_the_limit(as_alice: APIClient, tiny: LanguageModel) -> None:
    assert generate(as_alice, **valid()).status_code == 202
    assert generate(as_alice, **valid()).status_code == 202
    response = generate(as_alice, **valid())
    assert response.status_code == 429
    assert "limit is 2" in response.json()["error"]


def test_only_the_owner_sees_a_job(as_alice: APIClient, bob: User, tiny: LanguageModel) -> None:
    job_id = generate(as_alice, **valid()).json()["id"]
    as_bob = client_for(bob)
    assert as_bob.get(f"/api/v1/jobs/{job_id}").status_code == 404
    assert as_bob.post(f"/api/v1/jobs/{job_id}/cancel").status_code == 404
    assert as_alice.get(f"/api/v1/jobs/{job_id}").json()["status"] == "queued"
    assert APIClient().get(f"/api/v1/jobs/{job_id}").status_code == 401
    assert as_alice.get(f"/api/v1/jobs/{uuid.uuid4()}").status_code == 404
    assert as_alice.get("/api/v1/jobs/not-a-uuid").status_code == 404


def test_cancelling_a_queued_job_and_then_again(as_alice: APIClient, tiny: LanguageModel) -> None:
    job_id = generate(as_alice, **valid()).json()["id"]
    first = as_alice.post(f"/api/v1/jobs/{job_id}/cancel")
    assert first.status_code == 200
    assert first.json()["status"] == "cancelled"
    again = as_alice.post(f"/api/v1/jobs/{job_id}/cancel")
    assert again.status_code == 409
    assert again.json()["error"] == "the job already cancelled"
    # A message that arrives for it now does nothing.
    assert services.claim(job_id, "late@worker") is None


def test_a_batch_queues_one_job_per_prompt_in_order(
    as_alice: APIClient, tiny: LanguageModel
) -> None:
    prompts = ["w5 w6", "w7 w8", "w9 w10"]
    response = as_alice.post(
        "/api/v1/graphs/generate-batch",
        {"model": "tiny-api", "prompts": prompts, "node_threshold": 0.5},
        format="json",
    )
    assert response.status_code == 202, response.json()
    body = response.json()
    assert [job["params"]["prompt"] for job in body["jobs"]] == prompts
    assert [job["position"] for job in body["jobs"]] == [1, 2, 3]
    batch = as_alice.get(body["url"]).json()
    assert batch["counts"] == {"queued": 3}
    assert {job["params"]["node_threshold"] for job in batch["jobs"]} == {0.5}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"prompts": []}, "prompts"),
        ({"prompts": ["w5"] * 101}, "prompts"),
        ({"prompts": ["w5", " "]}, "prompts"),
        ({"prompts": ["w5", "w5 " * 100]}, "prompts[1]"),
        ({"prompts": ["w5"], "slug": "x"}, "slug"),
    ],
)
def test_bad_batches_get_400_naming_the_field(
    as_alice: APIClient, tiny: LanguageModel, body: dict[str, Any], field: str
) -> None:
    response = as_alice.post(
        "/api/v1/graphs/generate-batch", {"model": "tiny-api", **body}, format="json"
    )
    assert response.status_code == 400
    assert field in response.json()["detail"], response.json()


def test_someone_elses_batch_is_not_found(
    as_alice: APIClient, bob: User, tiny: LanguageModel
) -> None:
    url = as_alice.post(
        "/api/v1/graphs/generate-batch", {"model": "tiny-api", "prompts": ["w5"]}, format="json"
    ).json()["url"]
    as_bob = client_for(bob)
    assert as_bob.get(url).status_code == 404


def test_tokenize_validates_its_input(as_alice: APIClient, tiny: LanguageModel) -> None:
    response = as_alice.post("/api/v1/tokenize", {"model": "nope", "prompt": "w5"}, format="json")
    assert response.status_code == 400
    assert "model" in response.json()["detail"]
    response = as_alice.post("/api/v1/tokenize", {"model": "tiny-api"}, format="json")
    assert "prompt" in response.json()["detail"]


@override_settings(JOBS_TOKENIZE_TIMEOUT_S=1)
def test_tokenize_says_so_when_no_worker_answers(as_alice: APIClient, tiny: LanguageModel) -> None:
    LanguageModel.objects.filter(pk=tiny.pk).update(slug="tiny-nobody-serves")
    response = as_alice.post(
        "/api/v1/tokenize", {"model": "tiny-nobody-serves", "prompt": "w5"}, format="json"
    )
    assert response.status_code == 503
    assert "no worker" in response.json()["error"]


def test_a_private_graph_of_someone_else_is_never_named_by_a_taken_slug(
    as_alice: APIClient, tiny: LanguageModel, bob: User
) -> None:
    # bob's graphs made before private slugs keep their exact names: "hidden" is one.
    for visibility in ("private", "unlisted"):
        Graph.objects.create(
            model=tiny,
            slug=f"hidden-{visibility}",
            prompt="x",
            artifact="graphs/x.json.gz",
            owner=bob,
            visibility=visibility,
        )
    answers = [
        generate(as_alice, **valid(slug=slug, visibility="public")).json()["detail"]["slug"]
        for slug in ("hidden-private", "hidden-unlisted")
    ]
    assert answers == [
        "the slug 'hidden-private' is not available; choose another",
        "the slug 'hidden-unlisted' is not available; choose another",
    ]
    # A private request takes no name from anyone: its graph gets a slug of its own.
    assert generate(as_alice, **valid(slug="hidden-private")).status_code == 202
    assert generate(as_alice, **valid(slug="hidden-private")).status_code == 202


@pytest.mark.parametrize("batch", ["null", "undefined", "0", "%00"])
def test_a_batch_id_that_is_not_a_uuid_is_a_json_404(as_alice: APIClient, batch: str) -> None:
    # schemathesis sent /api/v1/batches/null during the walkthrough (issue 18).
    response = as_alice.get(f"/api/v1/batches/{batch}")
    assert response.status_code == 404
    assert "error" in response.json()


def test_a_target_of_several_tokens_is_refused_before_queueing(
    as_alice: APIClient, tiny: LanguageModel, no_broker: list[Job]
) -> None:
    response = generate(as_alice, **valid(target={"tokens": ["w5", "w8 w9"]}))
    assert response.status_code == 400
    message = response.json()["detail"]["target.tokens[1]"]
    assert "'w8 w9' is 2 tokens" in message
    assert not Job.objects.exists()


def _spacey_model(tmp_path: Path) -> LanguageModel:
    """A model whose tokenizer tells "Mary" from " Mary", as BPE vocabularies do."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    vocab = {"<bos>": 0, "Mary": 1, "ĠMary": 2, "John": 3, "Ġgave": 4, "Ġto": 5, ",": 6}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<bos>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    model = LanguageModel.objects.create(
        slug="spacey", display_name="s", source=str(tmp_path), n_layers=2, d_model=4,
        vocab_size=len(vocab),
    )  # fmt: skip
    model.default_transcoder_set = model.transcoder_sets.create(slug="plt", features_per_layer=8)
    model.save(update_fields=["default_transcoder_set"])
    return model


def test_a_target_without_its_leading_space_is_caught_and_named(
    as_alice: APIClient, tmp_path: Path, no_broker: list[Job]
) -> None:
    _spacey_model(tmp_path)
    body = {"model": "spacey", "prompt": "John gave to"}
    response = generate(as_alice, **body, target={"logit_diff": ["Mary", " John"]})
    assert response.status_code == 400
    message = response.json()["detail"]["target.logit_diff[0]"]
    assert "' Mary' (id 2)" in message
    assert "the id 1" in message
    assert not Job.objects.exists()
    # With the space, or as an id, it queues.
    assert generate(as_alice, **body, target={"tokens": [" Mary"]}).status_code == 202
    assert generate(as_alice, **body, target={"tokens": [1]}).status_code == 202
    # After an opening quote no space is wanted: "Mary" is meant as it is.
    quoted = {"model": "spacey", "prompt": 'John gave to "'}
    assert generate(as_alice, **quoted, target={"tokens": ["Mary"]}).status_code == 202


def test_a_batch_names_every_prompt_over_the_models_token_cap_at_once(
    as_alice: APIClient, tiny: LanguageModel, no_broker: list[Job]
) -> None:
    long = "w5 " * 100
    response = as_alice.post(
        "/api/v1/graphs/generate-batch",
        {"model": "tiny-api", "prompts": ["w5", long, "w6", long]},
        format="json",
    )
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert sorted(detail) == ["prompts[1]", "prompts[3]"]
    assert "tokens" in detail["prompts[1]"]
    assert not Job.objects.exists()
    assert not no_broker
