"""Steering runs through the job path: the API queues, the worker code runs the engine in this
process (``tasks.run_job``, what a worker's task calls) and stores the result on the run. The
numbers must be the graph's own and the engine's own: the job path only carries them."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from graphs.models import Graph
from jobs.models import Job
from steering.models import SteeringRun
from tests.conftest import client_for
from tests.steering.conftest import PROMPT, SLUG, run_queued

pytestmark = [pytest.mark.django_db]


def submit(
    client: APIClient, path: str, body: dict[str, Any], sent: list[Job], capture: Any
) -> dict[str, Any]:
    """POST, run the queued job here, and return the run as the API shows it afterwards."""
    with capture(execute=True):
        response = client.post(f"/api/v1/{path}", {"model": SLUG, **body}, format="json")
    assert response.status_code == 202, response.json()
    run_queued(sent)
    run: dict[str, Any] = client.get(response.json()["url"]).json()
    return run


def test_constrained_ablation_through_the_job_path_moves_logits_by_the_graphs_edges(
    alice: User,
    graph: Graph,
    engine_graph: Any,
    sent: list[Job],
    django_capture_on_commit_callbacks: Any,
) -> None:
    _, g = engine_graph
    # The feature with the largest effect on the top logit, by the graph's own numbers.
    logit_rows = g.adjacency[g.logit_offset :, : g.n_features]
    k = int(logit_rows[0].abs().argmax())
    layer, position, index = g.active_features[g.selected_features[k]].tolist()
    tokens = g.logit_tokens.tolist()
    assert len(tokens) >= 2, "the prompt must have two target logits to compare"
    body = {
        "graph": graph.slug,
        "interventions": [
            {"layer": layer, "position": position, "feature": index, "action": "ablate"}
        ],
        "logit_tokens": tokens,
    }
    run = submit(client_for(alice), "intervene", body, sent, django_capture_on_commit_callbacks)
    assert run["status"] == "succeeded", run["job"]
    rows = {row["token"]: row for row in run["result"]["logits"]}
    change = torch.tensor([rows[t]["logit"] - rows[t]["clean_logit"] for t in tokens])
    # Edges go to de-meaned logits; the mean's shift cancels in differences between targets.
    edges = g.adjacency[g.logit_offset :, k]
    torch.testing.assert_close(change - change[0], -(edges - edges[0]), atol=1e-4, rtol=1e-4)
    ablated = [
        a for a in run["result"]["activations"]
        if (a["layer"], a["position"], a["feature"]) == (layer, position, index)
    ]  # fmt: skip
    assert ablated == [
        {"layer": layer, "position": position, "feature": index,
         "clean": pytest.approx(float(g.activation_values[g.selected_features[k]])), "value": 0.0}
    ]  # fmt: skip
    assert [t["text"] for t in run["result"]["input_tokens"]] == ["<bos>", "w5", "w6", "w7", "w8"]


def test_a_group_applies_one_strength_to_each_member(
    alice: User,
    tiny: Any,
    engine_graph: Any,
    sent: list[Job],
    django_capture_on_commit_callbacks: Any,
) -> None:
    from inference.engine import intervene

    rm, g = engine_graph
    members = [
        dict(zip(("layer", "position", "feature"), g.active_features[i].tolist(), strict=True))
        for i in (0, 5, 11)
    ]
    body = {
        "prompt": PROMPT,
        "mode": "free",
        "interventions": [{"group": "trio", "features": members, "action": "scale", "value": 4}],
    }
    run = submit(client_for(alice), "intervene", body, sent, django_capture_on_commit_callbacks)
    direct = intervene(
        PROMPT, rm, [{**m, "action": "scale", "value": 4.0} for m in members], mode="free"
    )
    expected = {row["token"]: row["logit"] for row in direct.logit_table(10)}
    stored = {row["token"]: row["logit"] for row in run["result"]["logits"]}
    assert stored.keys() == expected.keys()
    for token, logit in expected.items():
        assert stored[token] == pytest.approx(logit, abs=1e-5)


def test_steering_without_interventions_gives_two_identical_continuations(
    alice: User,
    tiny: Any,
    engine_graph: Any,
    sent: list[Job],
    django_capture_on_commit_callbacks: Any,
) -> None:
    from inference.engine import steer_generate

    body = {"prompt": PROMPT, "interventions": [], "n_tokens": 6, "temperature": 1.0, "seed": 5}
    run = submit(client_for(alice), "steer", body, sent, django_capture_on_commit_callbacks)
    result = run["result"]
    assert result["default"] == result["steered"]
    tokens = result["default"]["tokens"]
    # The engine's own sampling with the same seed, carried unchanged: six tokens, none of them
    # the end-of-sequence token (id 2 here) that would have ended it sooner.
    rm, _ = engine_graph
    direct = steer_generate(PROMPT, rm, [], n_tokens=6, temperature=1.0, seed=5).to_dict()
    assert [t["id"] for t in tokens] == [t["token"] for t in direct["default"]["tokens"]]
    assert len(tokens) == 6
    assert 2 not in [t["id"] for t in tokens]
    first = tokens[0]
    assert len(first["top"]) == 5
    assert first["top"][0]["probability"] >= first["top"][-1]["probability"]


def test_a_steering_run_changes_the_predictions_and_a_rerun_reproduces_it(
    alice: User, tiny: Any, sent: list[Job], django_capture_on_commit_callbacks: Any
) -> None:
    # Features of the last layer at every position pushed hard: the next-token probabilities
    # must change from the first generated token on (the tiny random model's predictions are
    # too flat for the sampled text to be sure to change).
    body = {
        "prompt": PROMPT,
        "n_tokens": 8,
        "temperature": 0.7,
        "seed": 99,
        "interventions": [
            {"group": "all of layer 2", "action": "set", "value": 50,
             "features": [{"layer": 2, "feature": f} for f in range(0, 40, 4)]}
        ],
    }  # fmt: skip
    client = client_for(alice)
    run = submit(client, "steer", body, sent, django_capture_on_commit_callbacks)
    default, steered = run["result"]["default"], run["result"]["steered"]
    assert default["tokens"][0]["top"] != steered["tokens"][0]["top"]
    with django_capture_on_commit_callbacks(execute=True):
        again = client.post(f"{run['url']}/rerun", {}, format="json").json()
    run_queued(sent)
    assert client.get(again["url"]).json()["result"] == run["result"]


def test_what_only_the_worker_can_check_fails_the_job_with_a_message_naming_the_field(
    alice: User, tiny: Any, sent: list[Job], django_capture_on_commit_callbacks: Any
) -> None:
    # The web process does not know the model's context (64 positions); the worker does.
    type(tiny).objects.filter(pk=tiny.pk).update(max_prompt_tokens=64)
    long_prompt = " ".join(f"w{4 + i % 40}" for i in range(40))
    body = {"prompt": long_prompt, "interventions": [], "n_tokens": 30}
    run = submit(client_for(alice), "steer", body, sent, django_capture_on_commit_callbacks)
    assert run["status"] == "failed"
    assert run["result"] is None
    assert run["job"]["error"] == (
        "n_tokens: 41 prompt tokens + 30 new tokens is more than the model's context (64)"
    )


def test_a_run_cancelled_before_its_result_is_stored_keeps_no_result(
    alice: User,
    tiny: Any,
    sent: list[Job],
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    from inference import tasks
    from jobs import services as job_services

    real = tasks.steering_result

    def cancel_meanwhile(run: Any, rm: Any) -> Any:
        result = real(run, rm)
        job_services.cancel(run.job)  # the owner presses cancel while the engine works
        return result

    monkeypatch.setattr(tasks, "steering_result", cancel_meanwhile)
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(alice).post(
            "/api/v1/intervene",
            {"model": SLUG, "prompt": PROMPT, "interventions": []},
            format="json",
        )
    assert run_queued(sent) == ["cancelled"]
    run = SteeringRun.objects.get(pk=response.json()["id"])
    assert run.result is None
    assert run.status == "cancelled"
