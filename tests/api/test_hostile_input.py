"""Hostile JSON bodies get a 400 (or 413) in the API's JSON shape, never a 500: non-finite
numbers, lone surrogates, NUL characters, absurd nesting, bodies over the limit."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from features.models import TranscoderSet
from graphs.models import Graph
from tests.api.conftest import graph_json
from tests.api.test_graphs import upload
from tests.conftest import client_for

LOOKUP = "/api/v1/features/lookup"


def _post(client: APIClient, body: bytes) -> Any:
    return client.generic("POST", LOOKUP, body, content_type="application/json")  # type: ignore[arg-type]  # bytes are sent as they are


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "message", "detail"),
    [
        (b'{"features": [{"model": "tiny", "set": "plt", "layer": 1e999, "index": 0}]}',
         "JSON numbers must be finite, got 1e999", {}),
        (b'{"features": [], "max_activations": NaN}', "JSON numbers must be finite, got NaN", {}),
        (b'{"features": [{"model": "\\ud800", "set": "plt", "layer": 0, "index": 0}]}',
         "lone surrogate", {"features[0].model"}),
        (b'{"features": [{"model": "ti\\u0000ny", "set": "plt", "layer": 0, "index": 0}]}',
         "must not contain NUL", {"features[0].model"}),
        (b'{"features": [{"mo\\u0000del": "tiny"}]}', "must not contain NUL", {"features[0]"}),
        (b"[" * 50_000 + b"]" * 50_000, "JSON nested too deeply", {}),
        (b'{"features": [', "not valid JSON", {}),
    ],
)  # fmt: skip
def test_a_hostile_body_is_a_400_naming_the_problem(
    anon: APIClient, tset: TranscoderSet, body: bytes, message: str, detail: Any
) -> None:
    response = _post(anon, body)
    assert response.status_code == 400, response.content
    assert message in response.json()["error"]
    # A bad string is named by where it is; a body that does not parse has no field to name.
    assert set(response.json()["detail"]) == set(detail)


@pytest.mark.django_db
def test_a_body_over_the_limit_is_a_json_413(
    anon: APIClient, as_alice: APIClient, tset: TranscoderSet, settings: Any
) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2048
    key = '{"model": "tiny", "set": "plt", "layer": 0, "index": 0}'
    response = _post(anon, ('{"features": [' + ", ".join([key] * 100) + "]}").encode())
    assert response.status_code == 413
    assert response.json()["error"] == (
        "the request body is over the 2,048-byte limit (DATA_UPLOAD_MAX_MEMORY_SIZE)"
    )
    # A form field over the limit (Django's multipart parser raises; was an HTML 400).
    form = as_alice.post("/api/v1/graphs", {"title": "x" * 4096}, format="multipart")
    assert form.status_code == 413
    assert form.json()["error"].startswith("the request body is over the 2,048-byte limit")


def test_an_uploaded_graph_with_an_infinite_number_is_refused_and_nothing_is_stored(
    alice: User, model: Any
) -> None:
    raw = json.dumps(graph_json()).encode()
    raw = raw.replace(b'"prompt":', b'"note": 1e999, "prompt":', 1)
    response = upload(client_for(alice), raw, model="tiny")
    assert response.status_code == 400
    assert "1e999 is not a finite number" in response.json()["error"]
    assert not Graph.objects.exists()


def test_a_json_array_upload_says_a_graph_is_an_object(alice: User, model: Any) -> None:
    response = upload(client_for(alice), b"[1, 2]", model="tiny")
    assert response.status_code == 400
    assert response.json()["detail"] == {"file": "expected a JSON object (a graph), got an array"}
