"""Authentication: bearer tokens (hashed, revocable, last-used), sessions with CSRF, errors."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from tests.api.conftest import make_graph
from tests.conftest import client_for
from webapp.auth import create_token, digest
from webapp.models import ApiToken

pytestmark = pytest.mark.django_db


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def test_alice_creates_a_token_and_sees_it_only_once(alice: Any) -> None:
    response = client_for(alice).post("/api/v1/tokens", {"name": "laptop"}, format="json")
    assert response.status_code == 201
    token = response.json()["token"]
    assert token.startswith("ca_")
    row = ApiToken.objects.get()
    assert row.digest == digest(token)
    assert token not in {row.digest, row.prefix, row.name}
    listed = client_for(alice).get("/api/v1/tokens").json()["results"]
    assert "token" not in listed[0]
    assert listed[0]["prefix"] == token[:10]


def test_a_bearer_token_reads_the_owners_private_graph(alice: Any, model: Any) -> None:
    make_graph(alice, visibility="private")
    _, token = create_token(alice, "script")
    assert bearer(token).get("/api/v1/graphs/tiny/cat").status_code == 200
    assert ApiToken.objects.get().last_used_at is not None


def test_a_wrong_token_is_a_401_with_a_bearer_challenge(db: Any) -> None:
    response = bearer("ca_nonsense").get("/api/v1/graphs")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    assert response.json()["error"] == "invalid or revoked token"


def test_a_revoked_token_is_refused(alice: Any) -> None:
    row, token = create_token(alice, "old")
    assert client_for(alice).delete(f"/api/v1/tokens/{row.pk}").status_code == 204
    assert bearer(token).get("/api/v1/graphs").status_code == 401


def test_bob_cannot_see_or_revoke_alices_tokens(alice: Any, bob: Any) -> None:
    row, _ = create_token(alice, "mine")
    assert client_for(bob).get("/api/v1/tokens").json()["results"] == []
    assert client_for(bob).delete(f"/api/v1/tokens/{row.pk}").status_code == 404


def test_token_endpoints_need_a_signed_in_user(db: Any) -> None:
    assert APIClient().get("/api/v1/tokens").status_code == 401


def test_session_writes_need_a_csrf_token(alice: Any, model: Any) -> None:
    make_graph(alice, visibility="public")
    client = APIClient(enforce_csrf_checks=True)
    client.login(username="alice", password="pw-alice-123")
    response = client.post("/api/v1/graphs/tiny/cat/subgraphs", {"title": "x"}, format="json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["error"]


def test_token_writes_need_no_csrf_token(alice: Any, model: Any) -> None:
    make_graph(alice, visibility="public")
    _, token = create_token(alice, "ci")
    client = bearer(token)
    client.handler.enforce_csrf_checks = True
    response = client.post("/api/v1/graphs/tiny/cat/subgraphs", {"title": "x"}, format="json")
    assert response.status_code == 201


def test_writes_are_rate_limited_with_retry_after(alice: Any, model: Any, settings: Any) -> None:
    make_graph(alice, visibility="public")
    from rest_framework.throttling import SimpleRateThrottle

    rates = {**SimpleRateThrottle.THROTTLE_RATES, "writes": "2/min"}
    cache.clear()
    original = SimpleRateThrottle.THROTTLE_RATES
    SimpleRateThrottle.THROTTLE_RATES = rates
    try:
        client = client_for(alice)
        codes = [
            client.post(
                "/api/v1/graphs/tiny/cat/subgraphs", {"title": f"t{i}"}, format="json"
            ).status_code
            for i in range(3)
        ]
        assert codes == [201, 201, 429]
        response = client.post("/api/v1/graphs/tiny/cat/subgraphs", {"title": "t"}, format="json")
        assert int(response["Retry-After"]) > 0
        assert response.json()["error"].startswith("too many requests")
        assert client.get("/api/v1/graphs/tiny/cat/subgraphs").status_code == 200
    finally:
        SimpleRateThrottle.THROTTLE_RATES = original


def test_errors_share_one_json_shape(db: Any) -> None:
    response = APIClient().get("/api/v1/graphs/nope/nothing")
    assert response.status_code == 404
    assert response.json() == {"error": "Not found.", "detail": {}}
    response = APIClient().post(
        "/api/v1/features/lookup", "not json", content_type="application/json"
    )
    assert response.status_code == 400
    assert set(response.json()) == {"error", "detail"}
