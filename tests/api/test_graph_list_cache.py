"""Anonymous graph lists answered from Redis (graphs/list_cache.py): never with anything an
anonymous reader may not see, never to a signed-in user, and never after a write changed them."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings

from features.models import LanguageModel
from graphs.models import Graph
from tests.api.conftest import make_graph
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

LIST = "/api/v1/graphs?page_size=5"


def slugs(client: Any, url: str = LIST) -> list[str]:
    response = client.get(url)
    assert response.status_code == 200, response.content
    return [g["slug"] for g in response.json()["results"]]


def test_a_repeated_anonymous_list_needs_no_query(
    alice: Any, model: Any, django_assert_num_queries: Any
) -> None:
    make_graph(alice, slug="open", visibility="public")
    first = client_for(None).get(LIST)
    with django_assert_num_queries(0):
        second = client_for(None).get(LIST)
    assert second.status_code == 200
    assert second.json() == first.json()
    assert second["Content-Type"] == first["Content-Type"]


def test_private_and_unlisted_graphs_never_reach_anonymous_readers(alice: Any, model: Any) -> None:
    make_graph(alice, slug="open", visibility="public")
    make_graph(alice, slug="hidden", visibility="private")
    make_graph(alice, slug="link-only", visibility="unlisted")
    # Alice's own list holds all three; it is neither served from nor stored in the cache.
    assert sorted(slugs(client_for(alice))) == ["hidden", "link-only", "open"]
    assert slugs(client_for(None)) == ["open"]
    assert slugs(client_for(None)) == ["open"]
    assert sorted(slugs(client_for(alice))) == ["hidden", "link-only", "open"]


def test_a_signed_in_user_is_never_answered_from_the_anonymous_cache(
    alice: Any, bob: Any, model: Any
) -> None:
    make_graph(alice, slug="open", visibility="public")
    assert slugs(client_for(None), "/api/v1/graphs?owner=me") == []
    assert slugs(client_for(alice), "/api/v1/graphs?owner=me") == ["open"]
    assert slugs(client_for(bob), "/api/v1/graphs?owner=me") == []


def test_an_edit_is_visible_to_the_next_anonymous_request(alice: Any, model: Any) -> None:
    make_graph(alice, slug="open", visibility="public")
    anon = client_for(None)
    assert slugs(anon) == ["open"]
    owner = client_for(alice)
    assert owner.patch("/api/v1/graphs/tiny/open", {"title": "Renamed"}).status_code == 200
    assert anon.get(LIST).json()["results"][0]["title"] == "Renamed"
    assert owner.patch("/api/v1/graphs/tiny/open", {"visibility": "private"}).status_code == 200
    assert slugs(anon) == []
    assert owner.patch("/api/v1/graphs/tiny/open", {"visibility": "public"}).status_code == 200
    assert slugs(anon) == ["open"]
    assert owner.delete("/api/v1/graphs/tiny/open").status_code == 204
    assert slugs(anon) == []


def test_a_new_graph_a_hidden_model_and_a_renamed_owner_show_at_once(
    alice: Any, model: LanguageModel
) -> None:
    anon = client_for(None)
    assert slugs(anon) == []
    make_graph(alice, slug="open", visibility="public")
    assert slugs(anon) == ["open"]
    assert anon.get(LIST).json()["results"][0]["owner"] == "alice"
    alice.username = "alice2"
    alice.save(update_fields=["username"])
    assert anon.get(LIST).json()["results"][0]["owner"] == "alice2"
    model.visibility = "private"
    model.save(update_fields=["visibility"])
    assert slugs(anon) == []


def test_the_feature_filter_follows_the_graphs_and_their_nodes(alice: Any, model: Any) -> None:
    anon = client_for(None)
    assert slugs(anon, "/api/v1/graphs?feature=L0/7") == []
    make_graph(alice, slug="a", features=[(0, 7, 1)], visibility="public")
    assert slugs(anon, "/api/v1/graphs?feature=L0/7") == ["a"]
    Graph.objects.get(slug="a").delete()
    assert slugs(anon, "/api/v1/graphs?feature=L0/7") == []


def test_lists_are_answered_without_redis(settings: Any, alice: Any, model: Any) -> None:
    make_graph(alice, slug="open", visibility="public")
    down = {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:1/1"}  # nobody there
    with override_settings(CACHES={"default": down}):
        assert slugs(client_for(None)) == ["open"]
        # A write is not held up by the generation it cannot move on (writes through the
        # API are refused first, by their rate limit: test_outages_and_errors).
        graph = Graph.objects.get(slug="open")
        graph.title = "T"
        graph.save(update_fields=["title"])


def test_no_cache_when_turned_off(
    settings: Any, alice: Any, model: Any, django_assert_num_queries: Any
) -> None:
    settings.GRAPH_LIST_CACHE_S = 0
    make_graph(alice, slug="open", visibility="public")
    client_for(None).get(LIST)
    with django_assert_num_queries(2):  # the count and the page
        assert slugs(client_for(None)) == ["open"]


def test_a_sign_in_keeps_the_cache_and_a_profile_edit_retires_it(alice: Any, model: Any) -> None:
    from django.contrib.auth.models import update_last_login
    from django.core.cache import cache

    from graphs.list_cache import GENERATION_KEY

    make_graph(alice, slug="open", visibility="public")
    slugs(client_for(None))
    before = cache.get(GENERATION_KEY)
    # What Django's login does: a save of last_login alone, which no list shows.
    update_last_login(type(alice), alice)
    assert cache.get(GENERATION_KEY) == before
    alice.first_name = "Alice"
    alice.save(update_fields=["first_name"])
    assert cache.get(GENERATION_KEY) != before
