"""Hostile query strings on the HTML pages: never a 500."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from tests.site.conftest import graph_for

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("model")]


@pytest.mark.parametrize("q", ["c\x00at", "\x00", "L2/42\x00", "\x00\x00cat\x00"])
def test_a_nul_in_the_search_is_dropped_and_the_rest_still_searches(alice: User, q: str) -> None:
    graph_for(alice, "cat", "public")
    response = Client().get("/search", {"q": q})
    assert response.status_code == 200
    html = response.content.decode()
    assert "\x00" not in html
    if "cat" in q:
        assert "/graphs/tiny/cat" in html


@pytest.mark.parametrize("param", ["remix", "model", "set"])
def test_a_nul_in_the_generate_page_parameters_is_not_a_500(alice: User, param: str) -> None:
    client = Client()
    client.force_login(alice)
    response = client.get("/generate", {param: "tiny/c\x00at"})
    assert response.status_code < 500
