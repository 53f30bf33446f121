"""Queries per request for what a busy lab sends most (issue #14's load mix): each round trip to
Postgres is latency under 50 parallel clients, so an extra query or join coming back fails here."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.api.conftest import make_graph
from tests.api.test_features import dashboard, key, write_jsonl_gz
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def features(model: Any, tmp_path: Path) -> None:
    folder = tmp_path / "features"
    folder.mkdir()
    write_jsonl_gz(folder / "layer_0.jsonl.gz", [dashboard(i) for i in range(3)])
    call_command("import_features", folder, model="tiny", set_slug="plt", stdout=io.StringIO())


def test_a_lookup_is_one_query_with_visibility_in_it(features: None) -> None:
    body = {"features": [key(0, 1), key(0, 2), {**key(0, 0), "set": "nope"}]}
    with CaptureQueriesContext(connection) as queries:
        response = client_for(None).post("/api/v1/features/lookup", body, format="json")
    assert response.status_code == 200
    assert [r["index"] for r in response.json()["results"]] == [1, 2]
    assert len(queries) == 1, [q["sql"] for q in queries]
    assert "visibility" in queries[0]["sql"]


def test_a_lookup_of_a_private_model_finds_nothing_for_others_and_all_for_staff(
    features: None, model: Any, alice: Any
) -> None:
    model.visibility = "private"
    model.save(update_fields=["visibility"])
    body = {"features": [key(0, 1)]}
    answer = client_for(None).post("/api/v1/features/lookup", body, format="json").json()
    assert answer == {"results": [], "missing": [key(0, 1)]}
    alice.is_staff = True
    alice.save(update_fields=["is_staff"])
    answer = client_for(alice).post("/api/v1/features/lookup", body, format="json").json()
    assert [r["index"] for r in answer["results"]] == [1]


def test_an_artifact_read_is_one_query_without_owner_or_set(alice: Any, model: Any) -> None:
    make_graph(alice, visibility="public")
    with CaptureQueriesContext(connection) as queries:
        response = client_for(None).get(
            "/api/v1/graphs/tiny/cat/artifact", headers={"Accept-Encoding": "gzip"}
        )
    assert response.status_code == 200
    assert len(queries) == 1, [q["sql"] for q in queries]
    sql = queries[0]["sql"]
    assert "auth_user" not in sql
    assert "features_transcoderset" not in sql


def test_a_private_artifact_is_still_404_to_others(alice: Any, bob: Any, model: Any) -> None:
    make_graph(alice, visibility="private")
    assert client_for(None).get("/api/v1/graphs/tiny/cat/artifact").status_code == 404
    assert client_for(bob).get("/api/v1/graphs/tiny/cat/artifact").status_code == 404
    assert client_for(alice).get("/api/v1/graphs/tiny/cat/artifact").status_code == 200


def test_an_anonymous_graph_list_is_no_query_once_cached(alice: Any, model: Any) -> None:
    make_graph(alice, visibility="public")
    assert client_for(None).get("/api/v1/graphs?page_size=5").status_code == 200
    with CaptureQueriesContext(connection) as queries:
        response = client_for(None).get("/api/v1/graphs?page_size=5")
    assert response.status_code == 200
    assert [g["slug"] for g in response.json()["results"]] == ["cat"]
    assert len(queries) == 0, [q["sql"] for q in queries]
