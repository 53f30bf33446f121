"""Saved subgraphs: create, list, fetch by share slug, optimistic concurrency, ownership."""

from __future__ import annotations

from typing import Any

import pytest

from graphs.models import Subgraph
from tests.api.conftest import make_graph
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

BODY = {
    "title": "Texas circuit",
    "pinned_ids": ["0_7_1", "2_42_2"],
    "supernodes": [["capital", "0_7_1", "2_42_2"]],
    "node_labels": {"0_7_1": "cat-ness"},
    "thresholds": {"node": 0.8, "edge": 0.98},
    "notes": "first pass",
    "visibility": "unlisted",
}


def create(user: Any, graph_slug: str = "cat", **overrides: Any) -> Any:
    return client_for(user).post(
        f"/api/v1/graphs/tiny/{graph_slug}/subgraphs", {**BODY, **overrides}, format="json"
    )


@pytest.fixture
def graph(alice: Any, model: Any) -> Any:
    return make_graph(alice, visibility="unlisted")


def test_alice_saves_a_subgraph_at_version_1(alice: Any, graph: Any) -> None:
    response = create(alice)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["version"] == 1
    assert body["owner"] == "alice"
    assert body["graph"] == {"model": "tiny", "slug": "cat"}
    assert body["supernodes"] == [["capital", "0_7_1", "2_42_2"]]
    assert len(body["share_slug"]) >= 10


def test_bob_opens_an_unlisted_subgraph_by_its_share_slug(alice: Any, bob: Any, graph: Any) -> None:
    share = create(alice).json()["share_slug"]
    response = client_for(bob).get(f"/api/v1/subgraphs/{share}")
    assert response.status_code == 200
    assert response["ETag"] == '"1"'
    assert client_for(None).get(f"/api/v1/subgraphs/{share}").status_code == 200


def test_a_private_subgraph_is_a_404_to_charlie(alice: Any, charlie: Any, graph: Any) -> None:
    share = create(alice, visibility="private").json()["share_slug"]
    assert client_for(charlie).get(f"/api/v1/subgraphs/{share}").status_code == 404
    assert client_for(alice).get(f"/api/v1/subgraphs/{share}").status_code == 200


def test_a_subgraph_of_a_private_graph_stays_hidden_even_if_public(
    alice: Any, charlie: Any, model: Any
) -> None:
    make_graph(alice, slug="secret", visibility="private")
    share = create(alice, graph_slug="secret", visibility="public").json()["share_slug"]
    assert client_for(charlie).get(f"/api/v1/subgraphs/{share}").status_code == 404


def test_the_graph_lists_public_subgraphs_and_your_own(alice: Any, bob: Any, graph: Any) -> None:
    create(alice, title="alice public", visibility="public")
    create(alice, title="alice unlisted", visibility="unlisted")
    create(bob, title="bob private", visibility="private")
    titles = {
        s["title"]
        for s in client_for(bob).get("/api/v1/graphs/tiny/cat/subgraphs").json()["results"]
    }
    assert titles == {"alice public", "bob private"}


def test_an_update_naming_the_current_version_wins_and_bumps_it(alice: Any, graph: Any) -> None:
    share = create(alice).json()["share_slug"]
    response = client_for(alice).patch(
        f"/api/v1/subgraphs/{share}", {"title": "v2"}, format="json", HTTP_IF_MATCH='"1"'
    )
    assert response.status_code == 200, response.json()
    assert response.json()["version"] == 2
    assert response["ETag"] == '"2"'
    assert Subgraph.objects.get().title == "v2"


def test_a_stale_write_is_a_409_with_the_current_version_not_an_overwrite(
    alice: Any, graph: Any
) -> None:
    share = create(alice).json()["share_slug"]
    client = client_for(alice)
    client.patch(
        f"/api/v1/subgraphs/{share}", {"title": "tab one"}, format="json", HTTP_IF_MATCH='"1"'
    )
    response = client.patch(
        f"/api/v1/subgraphs/{share}", {"title": "tab two"}, format="json", HTTP_IF_MATCH='"1"'
    )
    assert response.status_code == 409
    body = response.json()
    assert body["current_version"] == 2
    assert body["current"]["title"] == "tab one"
    assert "version" in body["detail"]
    assert Subgraph.objects.get().title == "tab one"


def test_the_version_may_come_in_the_body_instead_of_if_match(alice: Any, graph: Any) -> None:
    share = create(alice).json()["share_slug"]
    client = client_for(alice)
    ok = client.put(
        f"/api/v1/subgraphs/{share}", {**BODY, "title": "put", "version": 1}, format="json"
    )
    assert ok.status_code == 200
    stale = client.put(f"/api/v1/subgraphs/{share}", {**BODY, "version": 1}, format="json")
    assert stale.status_code == 409


def test_an_update_without_a_version_is_refused(alice: Any, graph: Any) -> None:
    share = create(alice).json()["share_slug"]
    response = client_for(alice).patch(f"/api/v1/subgraphs/{share}", {"title": "x"}, format="json")
    assert response.status_code == 400
    assert "version" in response.json()["detail"]


def test_a_junk_if_match_is_a_400(alice: Any, graph: Any) -> None:
    share = create(alice).json()["share_slug"]
    response = client_for(alice).patch(
        f"/api/v1/subgraphs/{share}", {"title": "x"}, format="json", HTTP_IF_MATCH="banana"
    )
    assert response.status_code == 400


def test_bob_cannot_edit_or_delete_alices_subgraph(alice: Any, bob: Any, graph: Any) -> None:
    share = create(alice).json()["share_slug"]
    client = client_for(bob)
    assert (
        client.patch(
            f"/api/v1/subgraphs/{share}", {"title": "x"}, format="json", HTTP_IF_MATCH='"1"'
        ).status_code
        == 403
    )
    assert client.delete(f"/api/v1/subgraphs/{share}").status_code == 403
    assert client_for(alice).delete(f"/api/v1/subgraphs/{share}").status_code == 204
    assert not Subgraph.objects.exists()


def test_it_rejects_labels_over_200_chars(alice: Any, graph: Any) -> None:
    response = create(alice, node_labels={"0_7_1": "x" * 201})
    assert response.status_code == 400
    assert "node_labels" in response.json()["detail"]


def test_a_script_label_is_kept_as_plain_text(alice: Any, graph: Any) -> None:
    label = '<img src=x onerror="alert(1)">'
    share = create(alice, node_labels={"0_7_1": label}).json()["share_slug"]
    assert (
        client_for(alice).get(f"/api/v1/subgraphs/{share}").json()["node_labels"]["0_7_1"] == label
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("pinned_ids", "0_7_1"),
        ("pinned_ids", [1, 2]),
        ("supernodes", [["label"], "nope"]),
        ("supernodes", [[3, "0_7_1"]]),
        ("thresholds", {"node": "high"}),
        ("title", ""),
        ("visibility", "secret"),
        ("test_rows", {"ids": ["0_7_1"]}),
        ("test_rows", [{"ids": [], "action": "ablate"}]),
        ("test_rows", [{"ids": ["0_7_1"], "action": "explode", "value": 1}]),
        ("test_rows", [{"ids": ["0_7_1"], "action": "scale", "value": "big"}]),
        ("test_rows", [{"ids": ["0_7_1"], "action": "scale", "value": 2, "extra": 1}]),
        ("test_rows", [{"ids": ["0_7_1"], "action": "set", "value": 2, "all_positions": "y"}]),
    ],
)
def test_malformed_subgraphs_are_refused_naming_the_field(
    alice: Any, graph: Any, field: str, value: Any
) -> None:
    response = create(alice, **{field: value})
    assert response.status_code == 400
    assert any(key.startswith(field) for key in response.json()["detail"]), response.json()


def test_the_test_panel_rows_are_saved_with_the_subgraph(alice: Any, graph: Any) -> None:
    rows = [
        {"ids": ["0_7_1", "2_42_2"], "action": "scale", "value": 3, "all_positions": True},
        {"ids": ["0_7_1"], "action": "ablate"},
    ]
    response = create(alice, test_rows=rows)
    assert response.status_code == 201, response.json()
    share = response.json()["share_slug"]
    assert client_for(alice).get(f"/api/v1/subgraphs/{share}").json()["test_rows"] == [
        {"ids": ["0_7_1", "2_42_2"], "action": "scale", "value": 3.0, "all_positions": True},
        {"ids": ["0_7_1"], "action": "ablate", "value": 0.0, "all_positions": False},
    ]


def test_anonymous_users_cannot_save_subgraphs(graph: Any) -> None:
    response = client_for(None).post("/api/v1/graphs/tiny/cat/subgraphs", BODY, format="json")
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"pinned_ids": ["0_7_1", "9_999_9"]}, "pinned_ids[1]"),
        ({"supernodes": [["capital", "0_7_1", "ghost"]]}, "supernodes[0][2]"),
        ({"node_labels": {"nope_1_1": "x"}}, "node_labels"),
        ({"clicked_id": "3_3_3"}, "clicked_id"),
    ],
)
def test_an_update_naming_a_node_not_in_the_graph_is_refused_and_wipes_nothing(
    alice: Any, graph: Any, changes: dict[str, Any], field: str
) -> None:
    share = create(alice).json()["share_slug"]
    response = client_for(alice).patch(
        f"/api/v1/subgraphs/{share}", changes, format="json", HTTP_IF_MATCH='"1"'
    )
    assert response.status_code == 400, response.json()
    detail = response.json()["detail"]
    assert field in detail, detail
    bad = next(iter(changes.values()))
    bad_id = {"pinned_ids": "9_999_9", "supernodes": "ghost"}.get(next(iter(changes)))
    assert (bad_id or str(bad if isinstance(bad, str) else next(iter(bad)))) in detail[field]
    saved = Subgraph.objects.get()
    assert (saved.version, saved.pinned_ids) == (1, BODY["pinned_ids"])
    assert saved.supernodes == BODY["supernodes"]


def test_saving_a_subgraph_with_unknown_node_ids_is_refused(alice: Any, graph: Any) -> None:
    response = create(alice, pinned_ids=["0_7_1", "12_3_4"])
    assert response.status_code == 400
    assert "'12_3_4' is not a node" in response.json()["detail"]["pinned_ids[1]"]
    assert not Subgraph.objects.exists()


def test_a_supernode_without_any_node_is_refused(alice: Any, graph: Any) -> None:
    share = create(alice).json()["share_slug"]
    response = client_for(alice).patch(
        f"/api/v1/subgraphs/{share}", {"supernodes": [["x"]]}, format="json", HTTP_IF_MATCH='"1"'
    )
    assert response.status_code == 400
    assert "supernodes" in response.json()["detail"]
    assert Subgraph.objects.get().supernodes == BODY["supernodes"]
