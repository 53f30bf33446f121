"""How whole artifacts are sent: small ones from memory, big ones streamed from storage with an
iterator that suits the server (async under ASGI, sync otherwise), with no Django warning."""

from __future__ import annotations

import asyncio
import gzip
import json
import warnings
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.core.files.storage import default_storage
from django.db import connections
from django.test import AsyncClient

from tests.api.conftest import make_graph
from tests.conftest import client_for

ARTIFACT = "/api/v1/graphs/tiny/cat/artifact"


async def _read_async(response: Any) -> bytes:
    # What the ASGI handler does with a streaming response.
    return b"".join([chunk async for chunk in response])


@pytest.mark.django_db(transaction=True)
@pytest.mark.filterwarnings("error")
def test_a_big_artifact_streams_under_asgi_without_a_warning(
    settings: Any, alice: Any, model: Any
) -> None:
    settings.ARTIFACT_STREAM_ABOVE_MB = 0
    graph = make_graph(alice, visibility="public")

    async def fetch() -> tuple[Any, bytes]:
        try:
            response = await AsyncClient().get(ARTIFACT, headers={"Accept-Encoding": "gzip"})
            return response, await _read_async(response)
        finally:
            # The view's queries ran on asgiref's thread: close its connection, or the test
            # database cannot be dropped at the end of the run.
            await sync_to_async(connections.close_all)()

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        response, body = asyncio.run(fetch())
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Encoding"] == "gzip"
    assert response["ETag"] == f'"{graph.artifact_sha256}"'
    assert int(response["Content-Length"]) == len(body) == graph.artifact_gzip_bytes
    assert json.loads(gzip.decompress(body))["metadata"]["slug"] == "cat"


@pytest.mark.filterwarnings("error")
def test_a_big_artifact_streams_to_a_sync_server_without_a_warning(
    settings: Any, alice: Any, model: Any
) -> None:
    settings.ARTIFACT_STREAM_ABOVE_MB = 0
    graph = make_graph(alice)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        response = client_for(alice).get(ARTIFACT, HTTP_ACCEPT_ENCODING="gzip")
        body = response.getvalue()
    assert response.streaming
    assert len(body) == graph.artifact_gzip_bytes
    assert json.loads(gzip.decompress(body))["metadata"]["slug"] == "cat"


def test_a_small_artifact_is_sent_from_memory_once_read(alice: Any, model: Any) -> None:
    graph = make_graph(alice)
    client = client_for(alice)
    first = client.get(ARTIFACT, HTTP_ACCEPT_ENCODING="gzip")
    assert not first.streaming
    # Gone from storage: the second answer can only come from this process's copy.
    default_storage.delete(graph.artifact_name)
    second = client.get(ARTIFACT, HTTP_ACCEPT_ENCODING="gzip")
    assert second.status_code == 200
    assert second.content == first.content
    assert len(second.content) == graph.artifact_gzip_bytes
    assert second["ETag"] == first["ETag"] == f'"{graph.artifact_sha256}"'
    plain = client.get(ARTIFACT, HTTP_ACCEPT_ENCODING="")
    assert json.loads(plain.content) == json.loads(gzip.decompress(first.content))
