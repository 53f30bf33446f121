"""Property-based run of the whole OpenAPI schema: whatever the input, no 5xx response.

Runs in-process against the WSGI app (schemathesis' WSGI transport), as alice with a bearer
token, over a seeded graph and features, with a bounded number of examples per operation so it
finishes in well under two minutes. Marked slow.
"""

from __future__ import annotations

import json
import zlib
from typing import Any, cast

import pytest
import schemathesis
from django.conf import settings as django_settings
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from rest_framework.throttling import SimpleRateThrottle

from features.models import Explanation, Feature
from graphs.models import Subgraph
from steering.models import SteeringRun
from tests.api.conftest import make_graph
from webapp.auth import create_token

# Loaded at import (pytest-django has configured Django by then); fetching the schema needs no
# database. schemathesis' lazy ``from_fixture`` would avoid that but does not support pytest 9.
schema = schemathesis.openapi.from_wsgi("/api/schema/", WSGIHandler())


@pytest.fixture(autouse=True)
def _keep_the_test_connection() -> Any:
    # As django.test.Client does: a request must not close the test's connection (and with it
    # the transaction that rolls the test back).
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def seeded(alice: Any, tset: Any, monkeypatch: Any) -> dict[str, Any]:
    graph = make_graph(alice, slug="cat", visibility="public")
    subgraph = Subgraph.objects.create(graph=graph, owner=alice, title="seed", visibility="public")
    feature = Feature.objects.create(transcoder_set=tset, layer=0, index=7, top_logits=[" cat"])
    Explanation.objects.create(feature=feature, text="cats", score=1.0)
    # Throttling is tested elsewhere; here it would only turn writes into 429s.
    scopes = cast(dict[str, str], django_settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"])
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", dict.fromkeys(scopes, "100000/min"))
    run = SteeringRun.objects.create(
        kind="intervene", owner=alice, model=graph.model, graph=graph, subgraph=subgraph,
        prompt=graph.prompt, interventions=[], settings={"mode": "constrained"},
        visibility="public",
    )  # fmt: skip
    _, token = create_token(alice, "schemathesis")
    real = {"model": "tiny", "slug": "cat", "set_slug": "plt", "layer": 0, "index": 7}
    return {
        "token": token,
        "real": {**real, "share_slug": subgraph.share_slug, "run_id": str(run.pk)},
    }


def aim_at_seeded_objects(case: Any, real: dict[str, Any]) -> None:
    """Half the cases keep their fuzzed path; the others point at the seeded graph, feature and
    subgraph, so fuzzed bodies and query strings reach real objects, not just 404s."""
    if not case.path_parameters:
        return
    if zlib.crc32(repr((case.method, case.body, case.query)).encode()) % 2:
        for name in case.path_parameters:
            if name in real:
                case.path_parameters[name] = real[name]


@pytest.mark.slow
@schema.parametrize()
@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_input_makes_the_api_fail_with_a_5xx(case: Any, seeded: dict[str, Any]) -> None:
    aim_at_seeded_objects(case, seeded["real"])
    response = case.call(headers={"Authorization": f"Bearer {seeded['token']}"})
    # A deliberate 503 (a JSON error saying no worker can answer now) is an answer, not a crash.
    deliberate = response.status_code == 503 and "error" in _json_or_empty(response.text)
    assert response.status_code < 500 or deliberate, (
        f"{case.method} {case.formatted_path} -> {response.status_code}\n"
        f"{json.dumps(case.body, default=str)[:500] if case.body is not None else ''}\n"
        f"{response.text[:1000]}"
    )


def _json_or_empty(text: str) -> dict[str, Any]:
    try:
        body = json.loads(text)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
