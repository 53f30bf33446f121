"""The graph diff on the demo model's "The capital of France is" vs "... Germany is".

The demo model is a 4-layer toy (inference/packs/demo/card.md), so its features are not the clean
"country" and "capital of" features of a large model; what it does show, by construction of a
causal model, is checked here: the shared prefix "The capital of" gives the same features with
the same activations on both sides, the country's position gives features that differ, the
answers differ (" Paris" only in A, " Berlin" only in B), and patching what differs from B into A,
as a stored intervention run, turns A's answer into B's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache

from analysis.diff import GraphDiff, diff_graphs
from features.models import LanguageModel, TranscoderSet
from graphs import services
from jobs.models import Job
from tests.conftest import client_for
from tests.steering.conftest import run_queued

PACK = Path(__file__).resolve().parents[2] / "inference" / "packs" / "demo"
FRANCE = "The capital of France is"
GERMANY = "The capital of Germany is"
PARIS, BERLIN = " Paris", " Berlin"
COUNTRY = 4  # position of " France" / " Germany" (the special first token is 0)


@pytest.fixture(scope="module")
def demo() -> Any:
    from inference.engine import ReplacementModel

    return ReplacementModel.load(PACK / "model", PACK / "transcoders" / "config.yaml")


def graph_document(demo: Any, prompt: str, *, threshold: float | None = None) -> dict[str, Any]:
    from inference.engine import attribute, graph_to_json, prune

    graph = attribute(prompt, demo)
    if threshold is None:
        return graph_to_json(graph, prune(graph), slug=prompt.split()[3].lower(), scan="demo")
    pruned = prune(graph, node_threshold=threshold, edge_threshold=threshold)
    return graph_to_json(
        graph, pruned, slug="x", scan="demo", node_threshold=threshold, edge_threshold=threshold
    )


@pytest.fixture(scope="module")
def whole_diff(demo: Any) -> GraphDiff:
    """The diff of the two unpruned graphs: every active feature of both prompts."""
    return diff_graphs(
        graph_document(demo, FRANCE, threshold=1.0), graph_document(demo, GERMANY, threshold=1.0)
    )


def features_at(diff: GraphDiff, position: int) -> list[dict[str, Any]]:
    return [n for n in diff.nodes if n["kind"] == "feature" and n["pos_a"] == position]


def test_the_shared_prefix_gives_the_same_features_with_the_same_activations(
    whole_diff: GraphDiff,
) -> None:
    for position in (1, 2, 3):  # "The capital of"
        nodes = features_at(whole_diff, position)
        assert nodes, f"no features at position {position}"
        assert {n["status"] for n in nodes} == {"shared"}
        assert max(abs(n["delta_activation"]) for n in nodes) < 1e-5


def test_the_country_position_gives_features_that_differ(whole_diff: GraphDiff) -> None:
    nodes = features_at(whole_diff, COUNTRY)
    statuses = [n["status"] for n in nodes]
    assert statuses.count("only_a") >= 5
    assert statuses.count("only_b") >= 5
    # The features both countries share (generic "a country name") fire with other strengths.
    shared = [n for n in nodes if n["status"] == "shared"]
    assert sum(abs(n["delta_activation"]) > 0.05 for n in shared) >= len(shared) // 2
    assert [p for p in whole_diff.alignment if not p.same_token] == [
        p for p in whole_diff.alignment if p.a == COUNTRY
    ]


def test_the_answers_are_each_only_in_their_own_graph(demo: Any, whole_diff: GraphDiff) -> None:
    (paris,) = demo.tokenizer.encode(PARIS, add_special_tokens=False)
    (berlin,) = demo.tokenizer.encode(BERLIN, add_special_tokens=False)
    logits = {n["token"]: n["status"] for n in whole_diff.nodes if n["kind"] == "logit"}
    assert logits == {paris: "only_a", berlin: "only_b"}


@pytest.fixture
def stored(alice: User, demo: Any, settings: Any, tmp_path: Path, db: None) -> LanguageModel:
    """The demo model registered as a model of the site, with its two graphs (default pruning)
    stored as Alice's, public."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    # The job runs in this process inside the test's transaction (see tests/steering/conftest).
    settings.JOBS_HEARTBEAT_INTERVAL_S = 3600
    cache.clear()
    config = json.loads((PACK / "model" / "config.json").read_text())
    model = LanguageModel.objects.create(
        slug="demo",
        display_name="Demo",
        source=str(PACK / "model"),
        n_layers=config["num_hidden_layers"],
        d_model=config["hidden_size"],
        vocab_size=config["vocab_size"],
        max_prompt_tokens=config["max_position_embeddings"],
    )
    model.default_transcoder_set = TranscoderSet.objects.create(
        model=model,
        slug="demo-plt",
        features_per_layer=2048,
        source=str(PACK / "transcoders"),
        feature_input_hook="hook_resid_mid",
        feature_output_hook="mlp.hook_out",
    )
    model.save(update_fields=["default_transcoder_set"])
    for prompt in (FRANCE, GERMANY):
        services.import_graph_bytes(
            json.dumps(graph_document(demo, prompt)).encode(),
            model_slug="demo",
            transcoder_set_slug="demo-plt",
            owner=alice,
            visibility="public",
        )
    return model


def test_patching_what_differs_from_b_into_a_gives_bs_answer_as_a_stored_run(
    stored: LanguageModel,
    alice: User,
    sent: list[Job],
    django_capture_on_commit_callbacks: Any,
) -> None:
    client = client_for(alice)
    diff = client.get("/api/v1/graph-diff", {"a": "demo/france", "b": "demo/germany"}).json()
    patch = [n["patch"] for n in diff["nodes"] if n["patch"]][: diff["patch_limit"]]
    assert patch
    body = {
        "model": "demo",
        "graph": "france",
        "title": "Germany into France",
        "interventions": patch,
        "mode": "free",
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/api/v1/intervene", body, format="json")
    assert response.status_code == 202, response.json()
    assert run_queued(sent) == ["succeeded"]
    run = client.get(response.json()["url"]).json()
    assert run["status"] == "succeeded", run["job"]
    logits = run["result"]["logits"]
    before = max(logits, key=lambda row: row["clean_probability"])
    after = max(logits, key=lambda row: row["probability"])
    assert (before["text"], after["text"]) == (PARIS, BERLIN)
    assert after["probability"] > 0.5
    listed = client.get("/api/v1/graphs/demo/france/runs").json()["results"]
    assert [r["title"] for r in listed] == ["Germany into France"]
