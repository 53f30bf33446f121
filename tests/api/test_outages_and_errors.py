"""Errors outside the views' own checks still answer in the API's JSON shape: a service that is
down (503 with Retry-After), an unknown API route (404) and a crash (500)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import RequestFactory, override_settings
from rest_framework.test import APIClient

from features.models import TranscoderSet
from webapp.pages import server_error

# A loopback port nothing listens on: connecting fails at once, as when Redis is down. Set
# inside the test body, so it is lifted before the fixtures' teardown clears the cache.
REDIS_DOWN = override_settings(
    CACHES={
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
        }
    }
)


@pytest.mark.django_db
def test_a_lookup_while_redis_is_down_is_503_with_retry_after(
    anon: APIClient, tset: TranscoderSet
) -> None:
    key = {"model": "tiny", "set": "plt", "layer": 0, "index": 1}
    with REDIS_DOWN:
        response = anon.post("/api/v1/features/lookup", {"features": [key]}, format="json")
    assert response.status_code == 503
    assert response["Retry-After"] == "10"
    body = response.json()
    assert body["error"].startswith("Redis (rate limits, queue, cache) is unavailable")
    assert body["detail"] == {}
    assert body["retry_after"] == 10


@pytest.mark.django_db
def test_pages_that_need_no_redis_work_while_it_is_down(client: Any, tset: TranscoderSet) -> None:
    with REDIS_DOWN:
        assert client.get("/").status_code == 200
        assert client.get("/api/v1/models").status_code == 200


@pytest.mark.django_db
def test_an_unknown_api_route_is_404_in_the_json_shape(anon: APIClient) -> None:
    response = anon.get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"error": "no API route /api/v1/no-such-thing", "detail": {}}


def test_an_api_crash_is_500_in_the_json_shape_and_a_page_crash_is_html() -> None:
    api = server_error(RequestFactory().get("/api/v1/graphs"))
    assert api.status_code == 500
    assert api["Content-Type"] == "application/json"
    assert api.content == b'{"error": "internal server error", "detail": {}}'
    page = server_error(RequestFactory().get("/graphs/x/y"))
    assert page["Content-Type"].startswith("text/html")
