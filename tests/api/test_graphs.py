"""Graphs over the API: upload, list, retrieve, download, neighbourhood, delete, visibility."""

from __future__ import annotations

import gzip
import io
import json
from typing import Any

import pytest
from django.core.files.storage import default_storage

from graphs.models import Graph, GraphNode
from tests.api.conftest import graph_json, make_graph
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def upload(client: Any, document: Any, **fields: Any) -> Any:
    raw = document if isinstance(document, bytes) else json.dumps(document).encode()
    body = {"file": io.BytesIO(raw), **fields}
    body["file"].name = "graph.json"
    return client.post("/api/v1/graphs", body, format="multipart")


def test_alice_uploads_a_graph_and_its_feature_nodes_are_indexed(alice: Any, model: Any) -> None:
    response = upload(client_for(alice), graph_json(), model="tiny", visibility="public")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["slug"] == "cat"
    assert body["owner"] == "alice"
    assert body["n_features"] == 2
    assert body["transcoder_set"] == "plt"
    graph = Graph.objects.get(slug="cat")
    nodes = {(n.layer, n.feature_index, n.position) for n in GraphNode.objects.filter(graph=graph)}
    assert nodes == {(0, 7, 1), (2, 42, 2)}


def test_the_model_comes_from_metadata_scan_when_not_given(alice: Any, model: Any) -> None:
    response = upload(client_for(alice), graph_json())
    assert response.status_code == 201, response.json()
    assert response.json()["model"] == "tiny"


def test_uploads_need_a_signed_in_user(anon: Any, model: Any) -> None:
    response = upload(anon, graph_json(), model="tiny")
    assert response.status_code == 401
    assert response.json()["error"]


def test_a_taken_slug_is_a_400_naming_the_slug(alice: Any, model: Any) -> None:
    make_graph(alice, slug="cat")
    response = upload(
        client_for(alice), graph_json(), model="tiny", slug="cat", visibility="public"
    )
    assert response.status_code == 400
    assert "slug" in response.json()["detail"]
    assert Graph.objects.count() == 1


def test_without_a_slug_a_taken_one_gets_a_suffix(alice: Any, model: Any) -> None:
    make_graph(alice, slug="cat")
    response = upload(client_for(alice), graph_json(slug="cat"), model="tiny", visibility="public")
    assert response.status_code == 201
    assert response.json()["slug"] == "cat-2"


def test_a_wrongly_typed_layer_is_named_in_the_error(alice: Any, model: Any) -> None:
    document = graph_json()
    document["nodes"][3]["layer"] = "two"
    response = upload(client_for(alice), document, model="tiny")
    assert response.status_code == 400
    body = response.json()
    assert body["detail"] == {"nodes[3].layer": "expected an integer"}
    assert body["error"] == "nodes[3].layer: expected an integer"
    assert Graph.objects.count() == 0


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d["nodes"][0].update(ctx_idx=-1), "nodes[0].ctx_idx"),
        (lambda d: d["nodes"][0].update(ctx_idx=True), "nodes[0].ctx_idx"),
        (lambda d: d["nodes"][3].update(feature_type="lorsa"), "nodes[3].feature_type"),
        (lambda d: d["nodes"][3].update(layer=1_000_000_000), "nodes[3].layer"),
        (lambda d: d["nodes"][3].update(node_id="nonsense"), "nodes[3].node_id"),
        (lambda d: d["nodes"][3].update(clerp=["not", "text"]), "nodes[3].clerp"),
        (lambda d: d["links"][0].update(weight="heavy"), "links[0].weight"),
        (lambda d: d["links"][0].update(source="nowhere"), "links[0].source"),
        (lambda d: d.update(nodes={"length": 1_000_000_000}), "nodes"),
        (lambda d: d["metadata"].update(prompt_tokens="The cat"), "metadata.prompt_tokens"),
        (lambda d: d.pop("links"), "links"),
        (lambda d: d["nodes"].append(dict(d["nodes"][0])), "nodes[7].node_id"),
    ],
)
def test_malformed_graphs_are_refused_with_the_field_named(
    alice: Any, model: Any, mutate: Any, field: str
) -> None:
    document = graph_json()
    mutate(document)
    response = upload(client_for(alice), document, model="tiny")
    assert response.status_code == 400, response.json()
    assert field in response.json()["detail"], response.json()
    assert Graph.objects.count() == 0


def test_a_graph_claiming_a_billion_nodes_is_refused_before_it_is_built(
    alice: Any, model: Any, settings: Any
) -> None:
    settings.GRAPH_MAX_NODES = 50
    document = graph_json(features=[(0, i, 1) for i in range(60)])
    response = upload(client_for(alice), document, model="tiny")
    assert response.status_code == 400
    assert "limit" in response.json()["detail"]["nodes"]


def test_an_oversized_upload_is_a_413(alice: Any, model: Any, settings: Any) -> None:
    settings.GRAPH_UPLOAD_MAX_BYTES = 2048
    document = graph_json(features=[(0, i, 1) for i in range(40)])
    response = upload(client_for(alice), document, model="tiny")
    assert response.status_code == 413
    assert "limit" in response.json()["error"]


def test_a_gzip_bomb_is_refused_without_inflating_it(alice: Any, model: Any, settings: Any) -> None:
    settings.GRAPH_UPLOAD_MAX_BYTES = 100_000
    bomb = gzip.compress(b"[" + b"0," * 5_000_000 + b"0]")
    assert len(bomb) < 100_000
    response = upload(client_for(alice), bomb, model="tiny")
    assert response.status_code == 413


def test_broken_json_is_a_400(alice: Any, model: Any) -> None:
    response = upload(client_for(alice), b'{"metadata": ', model="tiny")
    assert response.status_code == 400
    assert "file" in response.json()["detail"]


def test_nan_is_not_json(alice: Any, model: Any) -> None:
    raw = json.dumps(graph_json()).replace('"weight": 1.5', '"weight": NaN').encode()
    response = upload(client_for(alice), raw, model="tiny")
    assert response.status_code == 400


def test_script_in_a_label_is_stored_and_served_as_text(alice: Any, model: Any) -> None:
    label = "<script>alert(1)</script>"
    graph = make_graph(alice, label=label)
    response = client_for(alice).get(
        f"/api/v1/graphs/tiny/{graph.slug}/artifact", HTTP_ACCEPT_ENCODING="identity"
    )
    assert response["Content-Type"] == "application/json"
    document = json.loads(response.content)
    assert document["nodes"][3]["clerp"] == label


def test_old_error_node_ids_are_rewritten_links_included(alice: Any, model: Any) -> None:
    graph = make_graph(alice, old_error_ids=True)
    document = json.loads(gzip.decompress(default_storage.open(graph.artifact_name).read()))
    ids = {n["node_id"] for n in document["nodes"]}
    assert "1_-1_2" in ids
    assert "0_1_2" not in ids
    assert {"source": "1_-1_2", "target": "5_55_2", "weight": 0.25} in document["links"]


def test_the_artifact_is_served_gzipped_with_an_etag(alice: Any, model: Any) -> None:
    graph = make_graph(alice)
    client = client_for(alice)
    response = client.get("/api/v1/graphs/tiny/cat/artifact", HTTP_ACCEPT_ENCODING="gzip, br")
    assert response.status_code == 200
    assert response["Content-Encoding"] == "gzip"
    assert response["ETag"] == f'"{graph.artifact_sha256}"'
    assert "Accept-Encoding" in response["Vary"]
    document = json.loads(gzip.decompress(response.getvalue()))
    assert document["metadata"]["scan"] == "tiny"
    assert document["metadata"]["feature_details"]["neuronpedia_source_set"] == "plt"
    assert {"metadata", "qParams", "nodes", "links"} <= document.keys()
    assert document["nodes"][3]["feature"] == (0 + 7) * (0 + 7 + 1) // 2 + 7  # Cantor(0, 7)


def test_a_conditional_get_with_the_same_etag_is_a_304(alice: Any, model: Any) -> None:
    graph = make_graph(alice)
    response = client_for(alice).get(
        "/api/v1/graphs/tiny/cat/artifact", HTTP_IF_NONE_MATCH=f'"{graph.artifact_sha256}"'
    )
    assert response.status_code == 304
    assert response.content == b""


def test_clients_without_gzip_get_plain_json(alice: Any, model: Any) -> None:
    make_graph(alice)
    response = client_for(alice).get("/api/v1/graphs/tiny/cat/artifact", HTTP_ACCEPT_ENCODING="")
    assert "Content-Encoding" not in response
    assert json.loads(response.content)["metadata"]["slug"] == "cat"


def test_export_with_a_subgraph_carries_its_pins_supernodes_and_labels(
    alice: Any, model: Any
) -> None:
    make_graph(alice)
    client = client_for(alice)
    created = client.post(
        "/api/v1/graphs/tiny/cat/subgraphs",
        {
            "title": "mine",
            "pinned_ids": ["0_7_1"],
            "supernodes": [["cats", "0_7_1", "2_42_2"]],
            "node_labels": {"2_42_2": "feline"},
        },
        format="json",
    ).json()
    response = client.get(
        f"/api/v1/graphs/tiny/cat/artifact?subgraph={created['share_slug']}",
        HTTP_ACCEPT_ENCODING="",
    )
    document = json.loads(response.content)
    assert document["qParams"]["pinnedIds"] == ["0_7_1"]
    assert document["qParams"]["supernodes"] == [["cats", "0_7_1", "2_42_2"]]
    labels = {n["node_id"]: n["clerp"] for n in document["nodes"]}
    assert labels["2_42_2"] == "feline"


def test_the_neighbourhood_of_a_node_lists_its_strongest_links(alice: Any, model: Any) -> None:
    make_graph(alice)
    response = client_for(alice).get(
        "/api/v1/graphs/tiny/cat/neighbourhood?node_id=5_55_2&direction=in&limit=2"
    )
    assert response.status_code == 200
    body = response.json()
    assert [link["weight"] for link in body["links"]] == [-0.75, -0.75]
    assert body["in_degree"] == {"5_55_2": 3}
    assert {n["node_id"] for n in body["nodes"]} >= {"5_55_2", "0_7_1", "2_42_2"}


def test_the_neighbourhood_of_an_unknown_node_is_a_404(alice: Any, model: Any) -> None:
    make_graph(alice)
    response = client_for(alice).get("/api/v1/graphs/tiny/cat/neighbourhood?node_id=nope")
    assert response.status_code == 404


# Visibility ---------------------------------------------------------------------------------


def test_a_private_graph_is_a_404_to_charlie_and_anonymous(
    alice: Any, charlie: Any, anon: Any, model: Any
) -> None:
    make_graph(alice, visibility="private")
    for client in (client_for(charlie), anon):
        assert client.get("/api/v1/graphs/tiny/cat").status_code == 404
        assert client.get("/api/v1/graphs/tiny/cat/artifact").status_code == 404
        assert client.get("/api/v1/graphs/tiny/cat/neighbourhood?node_id=0_7_1").status_code == 404
    assert client_for(alice).get("/api/v1/graphs/tiny/cat").status_code == 200


def test_bob_opens_an_unlisted_graph_by_its_link_but_does_not_see_it_listed(
    alice: Any, bob: Any, model: Any
) -> None:
    make_graph(alice, visibility="unlisted")
    bob_client = client_for(bob)
    assert bob_client.get("/api/v1/graphs/tiny/cat").status_code == 200
    assert bob_client.get("/api/v1/graphs").json()["results"] == []
    assert [g["slug"] for g in client_for(alice).get("/api/v1/graphs").json()["results"]] == ["cat"]


def test_anonymous_users_list_public_graphs_only(alice: Any, anon: Any, model: Any) -> None:
    make_graph(alice, slug="open", visibility="public")
    make_graph(alice, slug="hidden", visibility="private")
    slugs = [g["slug"] for g in anon.get("/api/v1/graphs").json()["results"]]
    assert slugs == ["open"]


def test_graphs_filter_by_prompt_text_owner_and_feature(alice: Any, bob: Any, model: Any) -> None:
    make_graph(alice, slug="a", features=[(0, 7, 1)])
    make_graph(bob, slug="b", features=[(1, 9, 1)], prompt_tokens=("<bos>", "A", " dog"))
    client = client_for(alice)
    assert [g["slug"] for g in client.get("/api/v1/graphs?q=DOG").json()["results"]] == ["b"]
    assert [g["slug"] for g in client.get("/api/v1/graphs?owner=alice").json()["results"]] == ["a"]
    assert [g["slug"] for g in client.get("/api/v1/graphs?owner=me").json()["results"]] == ["a"]
    assert [g["slug"] for g in client.get("/api/v1/graphs?feature=L1/9").json()["results"]] == ["b"]
    assert client.get("/api/v1/graphs?feature=banana").status_code == 400


def test_graph_lists_are_paginated(alice: Any, model: Any) -> None:
    for i in range(3):
        make_graph(alice, slug=f"g{i}")
    body = client_for(alice).get("/api/v1/graphs?page_size=2").json()
    assert body["count"] == 3
    assert len(body["results"]) == 2
    assert body["next"]
    assert client_for(alice).get("/api/v1/graphs?page=99").status_code == 404


def test_graphs_containing_a_feature_are_ordered_by_influence(alice: Any, model: Any) -> None:
    make_graph(alice, slug="weak", features=[(1, 1, 1), (0, 7, 1)])  # L0/7 influence 0.2
    make_graph(alice, slug="strong", features=[(0, 7, 1)])  # L0/7 influence 0.1
    make_graph(alice, slug="secret", features=[(0, 7, 1)], visibility="private")
    body = client_for(None).get("/api/v1/features/tiny/plt/0/7/graphs").json()
    assert [r["graph"]["slug"] for r in body["results"]] == ["strong", "weak"]
    assert body["results"][0]["node_id"] == "0_7_1"


# Ownership ----------------------------------------------------------------------------------


def test_only_the_owner_deletes_a_graph_and_its_artifact_goes_too(
    alice: Any, bob: Any, model: Any, django_capture_on_commit_callbacks: Any
) -> None:
    graph = make_graph(alice, visibility="unlisted")
    name = graph.artifact_name
    assert client_for(bob).delete("/api/v1/graphs/tiny/cat").status_code == 403
    with django_capture_on_commit_callbacks(execute=True):
        assert client_for(alice).delete("/api/v1/graphs/tiny/cat").status_code == 204
    assert not Graph.objects.exists()
    assert not GraphNode.objects.exists()
    assert not default_storage.exists(name)


def test_charlie_cannot_even_find_a_private_graph_to_delete(
    alice: Any, charlie: Any, model: Any
) -> None:
    make_graph(alice, visibility="private")
    assert client_for(charlie).delete("/api/v1/graphs/tiny/cat").status_code == 404
    assert Graph.objects.count() == 1


def test_the_owner_changes_visibility_but_only_staff_feature_a_graph(
    alice: Any, model: Any
) -> None:
    make_graph(alice, visibility="private")
    client = client_for(alice)
    response = client.patch("/api/v1/graphs/tiny/cat", {"visibility": "public"}, format="json")
    assert response.status_code == 200
    assert response.json()["visibility"] == "public"
    response = client.patch("/api/v1/graphs/tiny/cat", {"featured": True}, format="json")
    assert response.status_code == 400
    assert "featured" in response.json()["detail"]


def test_a_failed_import_leaves_no_artifact_behind(alice: Any, model: Any) -> None:
    make_graph(alice, slug="cat")
    before = set(default_storage.listdir("graphs/tiny")[1])
    with pytest.raises(Exception, match="slug"):
        make_graph(alice, slug="cat")
    assert set(default_storage.listdir("graphs/tiny")[1]) == before


def test_nul_characters_are_a_400_not_a_database_error(alice: Any, model: Any) -> None:
    document = graph_json()
    document["metadata"]["prompt"] = "The\x00 cat"
    response = upload(client_for(alice), document, model="tiny")
    assert response.status_code == 400
    assert "metadata.prompt" in response.json()["detail"]
    assert client_for(alice).get("/api/v1/graphs?q=a%00b").status_code == 400
    assert client_for(alice).get("/api/v1/features/search?q=a%00b").status_code == 400
    assert client_for(alice).get("/api/v1/features/search?logit=%00").status_code == 400
    body = {"features": [{"model": "ti\x00ny", "set": "plt", "layer": 0, "index": 0}]}
    assert client_for(alice).post("/api/v1/features/lookup", body, format="json").status_code == 400
    make_graph(alice)
    response = client_for(alice).post(
        "/api/v1/graphs/tiny/cat/subgraphs",
        {"title": "t", "node_labels": {"0_7_1": "a\x00"}},
        format="json",
    )
    assert response.status_code == 400


def test_big_graphs_can_be_fetched_without_links_or_with_the_strongest_only(
    alice: Any, model: Any
) -> None:
    make_graph(alice)
    client = client_for(alice)
    body = json.loads(
        client.get("/api/v1/graphs/tiny/cat/artifact?links=none", HTTP_ACCEPT_ENCODING="").content
    )
    assert body["links"] == []
    assert body["links_total"] == 4
    assert len(body["nodes"]) == 7
    response = client.get(
        "/api/v1/graphs/tiny/cat/artifact?max_links=1", HTTP_ACCEPT_ENCODING="gzip"
    )
    assert response["Content-Encoding"] == "gzip"
    body = json.loads(gzip.decompress(response.content))
    assert [link["weight"] for link in body["links"]] == [1.5]
    etag = response["ETag"]
    again = client.get("/api/v1/graphs/tiny/cat/artifact?max_links=1", HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304
    assert client.get("/api/v1/graphs/tiny/cat/artifact?max_links=lots").status_code == 400


def test_graphs_on_a_private_model_are_hidden_from_others_but_not_their_owner(
    alice: Any, bob: Any, model: Any
) -> None:
    make_graph(alice, visibility="public")
    model.visibility = "private"
    model.save(update_fields=["visibility"])
    assert client_for(bob).get("/api/v1/graphs/tiny/cat").status_code == 404
    assert client_for(bob).get("/api/v1/graphs").json()["results"] == []
    assert client_for(alice).get("/api/v1/graphs/tiny/cat").status_code == 200


def test_uploads_have_their_own_rate_limit(alice: Any, model: Any, monkeypatch: Any) -> None:
    from rest_framework.throttling import SimpleRateThrottle

    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"uploads": "1/hour"})
    client = client_for(alice)
    assert upload(client, graph_json(slug="one"), model="tiny").status_code == 201
    response = upload(client, graph_json(slug="two"), model="tiny")
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert client.get("/api/v1/graphs").status_code == 200


def test_a_declared_oversized_body_is_refused_before_it_is_read(
    alice: Any, model: Any, settings: Any
) -> None:
    settings.GRAPH_UPLOAD_MAX_BYTES = 2048
    response = client_for(alice).post(
        "/api/v1/graphs", b"x", content_type="application/octet-stream", CONTENT_LENGTH="999999999"
    )
    assert response.status_code == 413
