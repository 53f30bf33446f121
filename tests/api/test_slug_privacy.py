"""Slugs never reveal a graph the requester may not see: a user's non-public graph gets a slug of
its own (their name plus random letters), and a taken name is named only when the requester can
list the graph that has it."""

from __future__ import annotations

import io
import json
import re
from typing import Any

import pytest

from graphs import services
from graphs.models import Graph
from tests.api.conftest import graph_json, make_graph
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

PRIVATE_SLUG = re.compile(r"^(?P<name>.+)-[a-z]{10}$")


def upload(user: Any, document: dict[str, Any], **fields: Any) -> Any:
    body = {"file": io.BytesIO(json.dumps(document).encode()), "model": "tiny", **fields}
    body["file"].name = "graph.json"
    return client_for(user).post("/api/v1/graphs", body, format="multipart")


@pytest.mark.parametrize("visibility", ["private", "unlisted"])
def test_bobs_non_public_upload_gets_its_own_slug_and_takes_no_name_from_alice(
    alice: Any, bob: Any, model: Any, visibility: str
) -> None:
    mine = upload(bob, graph_json(), slug="secret-merger", visibility=visibility)
    assert mine.status_code == 201, mine.json()
    match = PRIVATE_SLUG.match(mine.json()["slug"])
    assert match is not None
    assert match["name"] == "secret-merger"
    assert client_for(bob).get(f"/api/v1/graphs/tiny/{mine.json()['slug']}").status_code == 200

    theirs = upload(alice, graph_json(), slug="secret-merger", visibility="public")
    assert theirs.status_code == 201, theirs.json()
    assert theirs.json()["slug"] == "secret-merger"


def test_a_private_upload_named_from_its_file_does_not_push_alices_name_to_cat_2(
    alice: Any, bob: Any, model: Any
) -> None:
    hidden = upload(bob, graph_json(slug="cat"))  # private by default, named from metadata.slug
    assert PRIVATE_SLUG.match(hidden.json()["slug"])["name"] == "cat"  # type: ignore[index]
    public = upload(alice, graph_json(slug="cat"), visibility="public")
    assert public.json()["slug"] == "cat"


def test_a_name_held_by_an_old_private_graph_gets_an_answer_that_says_nothing_about_it(
    alice: Any, bob: Any, model: Any
) -> None:
    # Made by an import with an exact name, as graphs were before private slugs.
    make_graph(bob, slug="launch-plan", visibility="private")
    response = upload(alice, graph_json(), slug="launch-plan", visibility="public")
    assert response.status_code == 400
    assert response.json()["detail"] == {
        "slug": "the slug 'launch-plan' is not available; choose another"
    }
    assert Graph.objects.filter(owner=alice).count() == 0


def test_a_name_alice_can_list_is_named_as_taken(alice: Any, bob: Any, model: Any) -> None:
    make_graph(alice, slug="mine", visibility="private")
    make_graph(bob, slug="open", visibility="public")
    for slug in ("mine", "open"):
        response = upload(alice, graph_json(), slug=slug, visibility="public")
        assert response.json()["detail"] == {
            "slug": f"model 'tiny' already has a graph called {slug!r}"
        }


def test_a_generated_non_public_graph_gets_its_own_slug(alice: Any, model: Any) -> None:
    def store(**options: Any) -> Graph:
        return services.store_generated_graph(
            graph_json(),
            model=model,
            transcoder_set=None,
            owner=alice,
            prompt="The cat sat",
            then=lambda graph: None,
            **options,
        )

    assert PRIVATE_SLUG.match(store(slug="cat").slug)["name"] == "cat"  # type: ignore[index]
    assert PRIVATE_SLUG.match(store(visibility="unlisted").slug)["name"] == "the-cat-sat"  # type: ignore[index]
    assert store(slug="cat", visibility="public").slug == "cat"
    assert store(visibility="public").slug == "the-cat-sat"
