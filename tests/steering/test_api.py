"""The steering API without a worker: validation, what is queued, links, visibility, re-runs."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import override_settings
from rest_framework.test import APIClient

from features.models import LanguageModel
from graphs.models import Graph, Subgraph
from jobs.models import Job
from steering.models import SteeringRun
from tests.conftest import client_for
from tests.steering.conftest import PROMPT, SLUG

pytestmark = [pytest.mark.django_db]


def intervention(**changes: Any) -> dict[str, Any]:
    return {"layer": 1, "position": 2, "feature": 7, "action": "ablate", **changes}


def intervene_body(**changes: Any) -> dict[str, Any]:
    return {"model": SLUG, "prompt": PROMPT, "interventions": [intervention()], **changes}


def steer_body(**changes: Any) -> dict[str, Any]:
    return {**intervene_body(), **changes}


def post(client: APIClient, path: str, body: dict[str, Any]) -> Any:
    return client.post(f"/api/v1/{path}", body, format="json")


def test_an_intervention_is_queued_on_the_models_queue_with_its_groups_expanded(
    as_alice: APIClient,
    tiny: LanguageModel,
    sent: list[Job],
    django_capture_on_commit_callbacks: Any,
) -> None:
    group = {
        "group": "say w8",
        "features": [{"layer": 0, "position": 3, "feature": 4}, {"layer": 2, "feature": 9}],
        "action": "scale",
        "value": 3,
    }
    body = intervene_body(interventions=[intervention(), group], mode="free", logit_tokens=[8])
    with django_capture_on_commit_callbacks(execute=True):
        response = post(as_alice, "intervene", body)
    assert response.status_code == 202, response.json()
    run = response.json()
    assert response["Location"] == run["url"] == f"/api/v1/steering-runs/{run['id']}"
    assert (run["kind"], run["status"], run["owner"], run["result"]) == (
        "intervene", "queued", "alice", None
    )  # fmt: skip
    assert run["job"]["websocket"] == f"/ws/jobs/{run['job']['id']}/"
    # The run keeps the group as the user made it; the job gets one entry per feature.
    assert run["interventions"][1] == {**group, "value": 3.0, "features": [
        {"layer": 0, "position": 3, "feature": 4}, {"layer": 2, "position": None, "feature": 9},
    ]}  # fmt: skip
    assert run["settings"] == {
        "mode": "free", "freeze_attention": True, "top_k": 10, "logit_tokens": [8]
    }  # fmt: skip
    [job] = sent
    assert (job.kind, job.queue, job.transcoder_set) == (
        "intervene", f"gpu.{SLUG}", tiny.default_transcoder_set
    )  # fmt: skip
    assert job.params["interventions"] == [
        {"layer": 1, "position": 2, "feature": 7, "action": "ablate", "value": 0.0},
        {"layer": 0, "position": 3, "feature": 4, "action": "scale", "value": 3.0},
        {"layer": 2, "position": None, "feature": 9, "action": "scale", "value": 3.0},
    ]
    assert job.params["prompt"] == PROMPT


def test_a_steering_run_without_a_seed_gets_one_and_keeps_it(
    as_alice: APIClient, tiny: LanguageModel, sent: list[Job]
) -> None:
    response = post(as_alice, "steer", steer_body(n_tokens=5, temperature=0.8))
    assert response.status_code == 202, response.json()
    settings = response.json()["settings"]
    assert isinstance(settings["seed"], int)
    assert settings == {
        "n_tokens": 5, "temperature": 0.8, "seed": settings["seed"],
        "apply_to_generated": True, "top_k": 5,
    }  # fmt: skip
    job = Job.objects.get(pk=response.json()["job"]["id"])
    assert (job.kind, job.params["seed"]) == ("steer", settings["seed"])


@pytest.mark.parametrize(
    ("path", "changes", "field", "message"),
    [
        ("intervene", {"interventions": [intervention(feature=40)]}, "interventions[0].feature",
         "has no feature 40 (0..39)"),
        ("intervene", {"interventions": [intervention(layer=3)]}, "interventions[0].layer",
         "3 is not a layer of tiny-steer (0..2)"),
        ("intervene", {"interventions": [intervention(position=5)]}, "interventions[0].position",
         "5 is outside the prompt (5 tokens, the special first token at 0)"),
        ("intervene", {"interventions": [intervention(position=0)]}, "interventions[0].position",
         "greater than or equal to 1"),
        ("intervene", {"interventions": [intervention(action="set", value=1e9)]},
         "interventions[0].value", "a set value must be between -1000 and 1000"),
        ("intervene", {"interventions": [intervention(action="scale", value=-250)]},
         "interventions[0].value", "a scale factor must be between -100 and 100"),
        ("intervene", {"interventions": [intervention(action="set")]}, "interventions[0].value",
         "required by the action 'set'"),
        ("intervene", {"interventions": [intervention(action="boost")]},
         "interventions[0].action", "not a valid choice"),
        ("intervene", {"interventions": [intervention(strength=2)]},
         "interventions[0].strength", "unknown field"),
        ("intervene", {"interventions": [{"group": "g", "action": "ablate", "features": [
            {"layer": 0, "position": 1, "feature": 1}, {"layer": 0, "position": 9, "feature": 1},
        ]}]}, "interventions[0].features[1].position", "9 is outside the prompt"),
        ("intervene", {"interventions": [{"group": " ", "action": "ablate",
                                          "features": [{"layer": 0, "feature": 1}]}]},
         "interventions[0].group", "may not be blank"),
        ("intervene", {"interventions": [{"group": "g", "layer": 1, "action": "ablate",
                                          "features": [{"layer": 0, "feature": 1}]}]},
         "interventions[0].layer", "a group lists its members under 'features'"),
        ("intervene", {"interventions": [{"position": 1, "feature": 1, "action": "ablate"}]},
         "interventions[0].layer", "required"),
        ("intervene", {"mode": "sideways"}, "mode", "not a valid choice"),
        ("intervene", {"freeze_attention": False}, "freeze_attention",
         "constrained mode always freezes attention"),
        ("intervene", {"logit_tokens": [48]}, "logit_tokens[0]", "token id must be in [0, 48)"),
        ("intervene", {"prompt": "   "}, "prompt", "the prompt is empty"),
        ("intervene", {"prompt": None}, "prompt", "may not be null"),
        ("intervene", {"model": "gpt-17"}, "model", "unknown model 'gpt-17'"),
        ("intervene", {"graph": "no-such-graph"}, "graph", "has no graph 'no-such-graph'"),
        ("intervene", {"subgraph": "nope"}, "subgraph", "no such subgraph you can open"),
        ("intervene", {"transcoder_set": "clt"}, "transcoder_set", "has no transcoder set 'clt'"),
        ("steer", {"n_tokens": 129}, "n_tokens", "less than or equal to 128"),
        ("steer", {"n_tokens": 0}, "n_tokens", "greater than or equal to 1"),
        ("steer", {"temperature": -1}, "temperature", "greater than or equal to 0"),
        ("steer", {"temperature": "NaN"}, "temperature", "A valid number is required"),
        ("steer", {"seed": -3}, "seed", "greater than or equal to 0"),
        ("steer", {"top_k": 21}, "top_k", "less than or equal to 20"),
        ("steer", {"mode": "free"}, "mode", "unknown field"),
    ],
)  # fmt: skip
def test_bad_input_is_a_400_that_names_the_field(
    as_alice: APIClient,
    tiny: LanguageModel,
    sent: list[Job],
    path: str,
    changes: dict[str, Any],
    field: str,
    message: str,
) -> None:
    response = post(as_alice, path, intervene_body(**changes))
    assert response.status_code == 400, response.json()
    detail = response.json()["detail"]
    assert field in detail, detail
    assert message in detail[field]
    assert response.json()["error"].startswith(field)
    assert sent == []
    assert not SteeringRun.objects.exists()


def test_too_many_features_at_once_are_refused(
    as_alice: APIClient, tiny: LanguageModel, sent: list[Job]
) -> None:
    members = [{"layer": 0, "position": 1, "feature": f} for f in range(30)]
    body = intervene_body(interventions=[{"group": "g", "action": "ablate", "features": members}])
    with override_settings(STEERING_MAX_INTERVENTIONS=20):
        response = post(as_alice, "intervene", body)
    assert response.status_code == 400
    assert "at most 20 features in one run" in response.json()["detail"]["interventions"]


def test_strangers_must_log_in(tiny: LanguageModel, sent: list[Job]) -> None:
    assert post(APIClient(), "intervene", intervene_body()).status_code == 401
    assert post(APIClient(), "steer", steer_body()).status_code == 401


def test_the_per_user_job_limit_applies(
    as_alice: APIClient, tiny: LanguageModel, sent: list[Job]
) -> None:
    with override_settings(JOBS_MAX_ACTIVE_PER_USER=1):
        assert post(as_alice, "intervene", intervene_body()).status_code == 202
        response = post(as_alice, "steer", steer_body())
    assert response.status_code == 429
    assert "the limit is 1" in response.json()["error"]


def test_a_run_on_a_graph_takes_its_prompt_and_checks_positions_against_its_tokens(
    as_alice: APIClient, graph: Graph, sent: list[Job]
) -> None:
    body = {"model": SLUG, "graph": graph.slug, "interventions": [intervention(position=4)]}
    response = post(as_alice, "intervene", body)
    assert response.status_code == 202, response.json()
    run = response.json()
    assert run["prompt"] == graph.prompt == PROMPT
    assert run["graph"]["page_url"] == f"/graphs/{SLUG}/{graph.slug}"
    assert run["transcoder_set"] == graph.transcoder_set.slug  # type: ignore[union-attr]
    too_far = {**body, "interventions": [intervention(position=len(graph.prompt_tokens))]}
    assert post(as_alice, "intervene", too_far).status_code == 400


def test_runs_are_listed_on_the_graph_and_the_subgraph_they_test(
    alice: User, bob: User, graph: Graph, sent: list[Job]
) -> None:
    subgraph = Subgraph.objects.create(graph=graph, owner=alice, title="w8", visibility="public")
    on_subgraph = post(
        client_for(alice), "steer", steer_body(subgraph=subgraph.share_slug, visibility="public")
    ).json()
    assert on_subgraph["subgraph"] == subgraph.share_slug
    assert on_subgraph["graph"]["slug"] == graph.slug  # the subgraph's graph
    on_graph = post(client_for(bob), "intervene", intervene_body(graph=graph.slug)).json()

    listed = client_for(alice).get(f"/api/v1/subgraphs/{subgraph.share_slug}/runs").json()
    assert [r["id"] for r in listed["results"]] == [on_subgraph["id"]]
    # Alice sees her public run on the graph, not Bob's private one; Bob sees both.
    as_alice = client_for(alice).get(f"/api/v1/graphs/{SLUG}/{graph.slug}/runs").json()
    assert [r["id"] for r in as_alice["results"]] == [on_subgraph["id"]]
    as_bob = client_for(bob).get(f"/api/v1/graphs/{SLUG}/{graph.slug}/runs").json()
    assert [r["id"] for r in as_bob["results"]] == [on_graph["id"], on_subgraph["id"]]


def test_a_subgraph_of_another_graph_is_refused(alice: User, graph: Graph, sent: list[Job]) -> None:
    other = Graph.objects.create(
        model=graph.model, slug="other", prompt="w9", owner=alice, visibility="public"
    )
    subgraph = Subgraph.objects.create(graph=other, owner=alice, title="x", visibility="public")
    body = intervene_body(graph=graph.slug, subgraph=subgraph.share_slug)
    response = post(client_for(alice), "intervene", body)
    assert response.status_code == 400
    assert response.json()["detail"]["subgraph"] == "it belongs to another graph"


def test_a_private_graph_cannot_be_tested_by_others(
    alice: User, bob: User, graph: Graph, sent: list[Job]
) -> None:
    Graph.objects.filter(pk=graph.pk).update(visibility="private")
    response = post(client_for(bob), "intervene", intervene_body(graph=graph.slug))
    assert response.status_code == 400
    assert "no graph 'four-words' you can open" in response.json()["detail"]["graph"]
    assert post(client_for(alice), "intervene", intervene_body(graph=graph.slug)).status_code == 202


@pytest.mark.parametrize(
    ("visibility", "bob_opens", "bob_lists"),
    [("private", False, False), ("unlisted", True, False), ("public", True, True)],
)
def test_who_sees_a_run(
    alice: User,
    bob: User,
    graph: Graph,
    sent: list[Job],
    visibility: str,
    bob_opens: bool,
    bob_lists: bool,
) -> None:
    run = post(client_for(alice), "intervene", intervene_body(graph=graph.slug)).json()
    assert client_for(alice).patch(run["url"], {"visibility": visibility}).status_code == 200
    for client, opens in ((client_for(bob), bob_opens), (APIClient(), bob_opens)):
        assert client.get(run["url"]).status_code == (200 if opens else 404)
        listed = client.get(f"/api/v1/graphs/{SLUG}/{graph.slug}/runs").json()["results"]
        assert (run["id"] in [r["id"] for r in listed]) == bob_lists
    assert client_for(alice).get(run["url"]).status_code == 200


def test_only_the_owner_changes_or_deletes_a_run(
    alice: User, bob: User, tiny: LanguageModel, sent: list[Job]
) -> None:
    run = post(client_for(alice), "steer", steer_body(visibility="public")).json()
    assert client_for(bob).patch(run["url"], {"title": "mine now"}).status_code == 403
    assert client_for(bob).delete(run["url"]).status_code == 403
    renamed = client_for(alice).patch(run["url"], {"title": "w8 off"})
    assert renamed.json()["title"] == "w8 off"
    bad = client_for(alice).patch(run["url"], {"visibility": "everyone"})
    assert bad.status_code == 400
    assert "visibility" in bad.json()["detail"]


def test_deleting_a_queued_run_cancels_its_job(
    as_alice: APIClient, tiny: LanguageModel, sent: list[Job]
) -> None:
    run = post(as_alice, "intervene", intervene_body()).json()
    assert as_alice.delete(run["url"]).status_code == 204
    assert Job.objects.get(pk=run["job"]["id"]).status == "cancelled"
    assert as_alice.get(run["url"]).status_code == 404


def test_a_rerun_is_a_new_run_with_the_same_request_and_seed(
    alice: User, bob: User, graph: Graph, sent: list[Job]
) -> None:
    original = post(
        client_for(alice),
        "steer",
        steer_body(graph=graph.slug, visibility="public", title="w8 up", seed=1234),
    ).json()
    response = client_for(bob).post(f"{original['url']}/rerun", {}, format="json")
    assert response.status_code == 202, response.json()
    again = response.json()
    assert again["id"] != original["id"]
    assert (again["owner"], again["rerun_of"], again["visibility"]) == (
        "bob", original["id"], "private"
    )  # fmt: skip
    for key in ("prompt", "interventions", "settings", "graph", "title", "transcoder_set"):
        assert again[key] == original[key], key
    assert [job.params["seed"] for job in Job.objects.filter(kind="steer")] == [1234, 1234]


def test_a_private_run_cannot_be_rerun_by_others(
    alice: User, bob: User, tiny: LanguageModel, sent: list[Job]
) -> None:
    run = post(client_for(alice), "intervene", intervene_body()).json()
    assert client_for(bob).post(f"{run['url']}/rerun", {}, format="json").status_code == 404
    assert client_for(alice).post(f"{run['url']}/rerun", {}, format="json").status_code == 202
