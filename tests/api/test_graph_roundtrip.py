"""A graph that leaves and comes back: what the export hands out, and what re-uploading an export
keeps (scores, labels as labels, pins and groups)."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from graphs import services
from graphs.models import Graph
from tests.api.conftest import graph_json
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def upload(client: Any, document: dict[str, Any], **fields: Any) -> Any:
    # Public: a non-public graph's slug gets random letters, and these tests name the slugs.
    body = {"file": io.BytesIO(json.dumps(document).encode()), "visibility": "public", **fields}
    body["file"].name = "graph.json"
    return client.post("/api/v1/graphs", body, format="multipart")


def export(client: Any, path: str) -> dict[str, Any]:
    response = client.get(path, HTTP_ACCEPT_ENCODING="")
    assert response.status_code == 200
    return json.loads(response.content)


def generated_document() -> dict[str, Any]:
    """As the worker hands a graph over: the engine's info names the model folder it loaded."""
    document = graph_json(slug="made")
    document["metadata"]["info"] = {
        "generator": {"name": "circuit-atlas", "version": "0.1.0"},
        "model": "/srv/circuit-atlas/var/models/tiny-llama",
    }
    document["metadata"]["scores"] = {"replacement_score": 0.71, "completeness_score": 0.91}
    return document


def test_the_exported_graph_names_its_model_by_slug_not_by_a_server_path(
    alice: Any, model: Any
) -> None:
    services.store_generated_graph(
        generated_document(),
        model=model,
        transcoder_set=None,
        owner=alice,
        prompt="The cat",
        slug="made",
        visibility="public",
        then=lambda graph: None,
    )
    document = export(client_for(alice), "/api/v1/graphs/tiny/made/artifact?download=1")
    assert document["metadata"]["info"]["model"] == "tiny"
    assert "/srv/" not in json.dumps(document)


def test_reuploading_an_export_keeps_its_scores(alice: Any, model: Any) -> None:
    client = client_for(alice)
    assert upload(client, generated_document()).status_code == 201
    exported = export(client, "/api/v1/graphs/tiny/made/artifact")
    exported["metadata"]["slug"] = "again"
    response = upload(client, exported)
    assert response.status_code == 201, response.json()
    scores = {"replacement_score": 0.71, "completeness_score": 0.91}
    assert response.json()["scores"] == scores
    assert Graph.objects.get(slug="again").scores == scores


def test_reuploading_a_subgraph_export_keeps_labels_as_labels_not_node_names(
    alice: Any, model: Any
) -> None:
    client = client_for(alice)
    assert upload(client, graph_json()).status_code == 201
    share = client.post(
        "/api/v1/graphs/tiny/cat/subgraphs",
        {
            "title": "mine",
            "pinned_ids": ["0_7_1", "2_42_2"],
            "supernodes": [["cats", "0_7_1", "2_42_2"]],
            "node_labels": {"2_42_2": "feline"},
        },
        format="json",
    ).json()["share_slug"]
    exported = export(client, f"/api/v1/graphs/tiny/cat/artifact?subgraph={share}")
    assert exported["qParams"]["clerps"] == [["2_42_2", "feline"]]
    assert {n["node_id"]: n["clerp"] for n in exported["nodes"]}["2_42_2"] == "feline"

    exported["metadata"]["slug"] = "cat-again"
    assert upload(client, exported).status_code == 201
    again = export(client, "/api/v1/graphs/tiny/cat-again/artifact")
    assert again["qParams"]["clerps"] == [["2_42_2", "feline"]]
    assert again["qParams"]["pinnedIds"] == ["0_7_1", "2_42_2"]
    assert again["qParams"]["supernodes"] == [["cats", "0_7_1", "2_42_2"]]
    # The node's own name is back to what it was: the label is not baked into it.
    assert {n["node_id"]: n["clerp"] for n in again["nodes"]}["2_42_2"] == ""


def test_the_explorers_own_export_fields_survive_an_upload(alice: Any, model: Any) -> None:
    document = graph_json()
    document["qParams"].update(
        clerps={"0_7_1": "the article"}, pruningThreshold=0.6, edgeThreshold=0.9
    )
    client = client_for(alice)
    assert upload(client, document).status_code == 201
    stored = export(client, "/api/v1/graphs/tiny/cat/artifact")
    assert stored["qParams"]["clerps"] == [["0_7_1", "the article"]]
    assert (stored["qParams"]["pruningThreshold"], stored["qParams"]["edgeThreshold"]) == (0.6, 0.9)


@pytest.mark.parametrize(
    ("qparams", "field"),
    [
        ({"clerps": [["0_7_1"]]}, "qParams.clerps[0]"),
        ({"clerps": "0_7_1:label"}, "qParams.clerps"),
        ({"pruningThreshold": 7}, "qParams.pruningThreshold"),
    ],
)
def test_malformed_labels_and_thresholds_are_named(
    alice: Any, model: Any, qparams: dict[str, Any], field: str
) -> None:
    document = graph_json()
    document["qParams"].update(qparams)
    response = upload(client_for(alice), document)
    assert response.status_code == 400
    assert field in response.json()["detail"], response.json()
