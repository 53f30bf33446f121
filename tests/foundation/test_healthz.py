"""/healthz: 200 when database, Redis and a worker are up; 503 naming what is down."""

from __future__ import annotations

import pytest
from django.test import Client, override_settings

pytestmark = pytest.mark.django_db


@pytest.mark.services
def test_it_names_the_worker_when_none_answers() -> None:
    # The test broker has no worker listening (tests start their own only when they need one).
    response = Client().get("/healthz")
    body = response.json()
    assert response.status_code == 503
    assert body["down"] == ["worker"]
    assert body["components"]["database"]["ok"] is True
    assert body["components"]["redis"]["ok"] is True
    assert "no Celery worker answered" in body["components"]["worker"]["error"]


def test_it_names_redis_when_redis_is_unreachable() -> None:
    with override_settings(REDIS_URL="redis://127.0.0.1:1/0"):
        response = Client().get("/healthz")
    body = response.json()
    assert response.status_code == 503
    assert "redis" in body["down"]
    assert body["components"]["database"]["ok"] is True
    assert response["Cache-Control"].startswith("max-age=0")
