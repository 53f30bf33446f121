"""The site's ASGI handler (webapp/http_handler.py): the whole middleware chain and the view run
in one sync pass on the request's thread, and the answers are those of Django's own handler:
every middleware's headers, errors in the API's shape, artifacts streamed from an async iterator.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import threading
import warnings
from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from asgiref.testing import ApplicationCommunicator
from django.db import connections
from django.http import HttpRequest

from tests.api.conftest import make_graph
from webapp.http_handler import OneTripASGIHandler

calls: list[tuple[str, int]] = []


class RecordingMiddleware:
    """Both sync and async capable, so Django's handler would run it in async mode."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.mode = "async" if iscoroutinefunction(get_response) else "sync"
        if self.mode == "async":
            markcoroutinefunction(self)  # __call__ then returns get_response's coroutine

    def __call__(self, request: HttpRequest) -> Any:
        calls.append((self.mode, threading.get_ident()))
        return self.get_response(request)


def _get(
    path: str, headers: list[tuple[bytes, bytes]] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One GET through a fresh handler, as uvicorn sends it; the status, headers and body."""

    async def exchange() -> tuple[int, dict[str, str], bytes]:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "headers": [(b"host", b"testserver"), *(headers or [])],
            "client": ("127.0.0.1", 5000),
            "server": ("testserver", 80),
        }
        communicator = ApplicationCommunicator(OneTripASGIHandler(), scope)
        try:
            await communicator.send_input({"type": "http.request", "body": b""})
            start = await communicator.receive_output(timeout=10)
            body = b""
            while True:
                message = await communicator.receive_output(timeout=10)
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
            await communicator.wait(timeout=10)
        finally:
            await sync_to_async(connections.close_all)()
        head = {k.decode().lower(): v.decode() for k, v in start["headers"]}
        return start["status"], head, body

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return asyncio.run(exchange())


@pytest.fixture(autouse=True)
def _connections_as_under_asgi(monkeypatch: Any) -> None:
    """As in a web process (webapp/settings.py): no persistent connections, so each request's
    connection is closed when Django sends request_finished, in that request's context."""
    monkeypatch.setitem(connections.settings["default"], "CONN_MAX_AGE", 0)


@pytest.fixture
def recording(settings: Any) -> list[tuple[str, int]]:
    settings.MIDDLEWARE = [
        "tests.api.test_http_handler.RecordingMiddleware",
        *settings.MIDDLEWARE,
        "tests.api.test_http_handler.RecordingMiddleware",
    ]
    calls.clear()
    return calls


@pytest.mark.django_db(transaction=True)
def test_the_middleware_chain_runs_in_one_sync_pass_on_one_thread(recording: Any) -> None:
    status, headers, body = _get("/api/v1/models")
    assert status == 200, body
    assert json.loads(body)["results"] == []
    # The first and the last middleware ran in sync mode, on the same thread.
    assert [mode for mode, _ in recording] == ["sync", "sync"]
    assert recording[0][1] == recording[1][1] != threading.get_ident()
    # Every middleware of the site still ran: security, CSP, clickjacking.
    assert headers["x-content-type-options"] == "nosniff"
    assert "content-security-policy" in headers
    assert headers["x-frame-options"] == "DENY"


@pytest.mark.django_db(transaction=True)
def test_an_unknown_api_route_answers_in_the_error_shape() -> None:
    status, headers, body = _get("/api/v1/no-such-thing")
    assert status == 404
    assert headers["content-type"] == "application/json"
    assert set(json.loads(body)) >= {"error"}


@pytest.mark.django_db(transaction=True)
def test_a_big_artifact_streams_from_its_async_iterator(
    settings: Any, alice: Any, model: Any
) -> None:
    settings.ARTIFACT_STREAM_ABOVE_MB = 0
    graph = make_graph(alice, visibility="public")
    status, headers, body = _get(
        "/api/v1/graphs/tiny/cat/artifact", headers=[(b"accept-encoding", b"gzip")]
    )
    assert status == 200
    assert headers["content-encoding"] == "gzip"
    assert headers["etag"] == f'"{graph.artifact_sha256}"'
    assert len(body) == graph.artifact_gzip_bytes
    assert json.loads(gzip.decompress(body))["metadata"]["slug"] == "cat"


@pytest.mark.django_db(transaction=True)
def test_each_request_closes_its_database_connection(model: Any) -> None:
    def server_sessions() -> int:
        with connections["default"].cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            )
            row = cursor.fetchone()
        return int(row[0])

    before = server_sessions()
    for _ in range(3):
        status, _headers, body = _get("/api/v1/models")
        assert status == 200, body
        assert json.loads(body)["count"] == 1
    assert server_sessions() == before
