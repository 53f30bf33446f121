"""The explorer's binary sidecar endpoint (graphs/sidecar.py): the artifact's graph, served with
the artifact's access rules and caching, made when the graph is stored (or on the first request
when there is none), kept in storage, and made again whenever what storage holds is not whole or
not this artifact's."""

from __future__ import annotations

import gzip
import json
import struct
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.urls import reverse

from contract import graph_binary
from graphs import artifacts, pages, services, sidecar
from graphs.models import Graph
from tests.api.conftest import graph_json, make_graph
from tests.conftest import client_for

ARTIFACT = "/api/v1/graphs/tiny/cat/artifact"
BINARY = "/api/v1/graphs/tiny/cat/artifact/binary"


def _forget_checked() -> None:
    """What a fresh web process knows: nothing; it reads storage again."""
    sidecar._checked._items.clear()
    sidecar._checked._bytes = 0


@pytest.fixture(autouse=True)
def _fresh_process_cache() -> None:
    # The checked-sidecar cache outlives a test's storage folder; each test starts without it.
    _forget_checked()


def _stored_name(graph: Graph) -> str:
    return artifacts.sidecar_name(graph.artifact_name)


def _f32_abs(value: float) -> float:
    return float(struct.unpack("<f", struct.pack("<f", abs(value)))[0])


def test_the_sidecar_is_the_artifacts_graph_with_links_in_the_explorers_order(
    alice: Any, model: Any
) -> None:
    graph = make_graph(alice, features=[(0, 7, 1), (2, 42, 2), (3, 9, 2)])
    response = client_for(alice).get(BINARY)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/octet-stream"
    graph_binary.verify(response.content, artifact_sha256=graph.artifact_sha256)
    document = json.loads(client_for(alice).get(ARTIFACT).content)
    decoded = graph_binary.decode(response.content)
    assert {k: v for k, v in decoded.items() if k != "links"} == {
        k: v for k, v in document.items() if k != "links"
    }
    ordered = sorted(
        enumerate(document["links"]), key=lambda item: (-_f32_abs(item[1]["weight"]), item[0])
    )
    assert decoded["links"] == [link for _, link in ordered]


def test_it_answers_what_the_page_asks_for_and_errors_in_json(alice: Any, model: Any) -> None:
    graph = make_graph(alice, visibility="private")

    def get(user: Any) -> Any:
        return client_for(user).get(
            BINARY, HTTP_ACCEPT="application/octet-stream", HTTP_ACCEPT_ENCODING="gzip"
        )

    response = get(alice)
    assert response.status_code == 200
    graph_binary.verify(gzip.decompress(response.content), artifact_sha256=graph.artifact_sha256)
    missing = get(None)
    assert missing.status_code == 404
    assert missing["Content-Type"] == "application/json"
    assert "error" in missing.json()


def test_it_is_gzipped_for_clients_that_accept_gzip(alice: Any, model: Any) -> None:
    make_graph(alice)
    plain = client_for(alice).get(BINARY).content
    packed = client_for(alice).get(BINARY, HTTP_ACCEPT_ENCODING="gzip, br")
    assert packed["Content-Encoding"] == "gzip"
    assert gzip.decompress(packed.content) == plain


def test_it_has_the_artifacts_cache_headers_and_an_etag_keyed_on_the_artifact(
    alice: Any, model: Any
) -> None:
    for visibility, slug in (("public", "cat"), ("private", "dog")):
        graph = make_graph(alice, slug=slug, visibility=visibility)
        json_response = client_for(alice).get(f"/api/v1/graphs/tiny/{slug}/artifact")
        response = client_for(alice).get(f"/api/v1/graphs/tiny/{slug}/artifact/binary")
        assert response["ETag"] == f'"{graph.artifact_sha256}-explorer-v1"'
        assert response["ETag"] != json_response["ETag"]
        for header in ("Cache-Control", "Vary"):
            assert response[header] == json_response[header]


def test_a_conditional_get_with_its_etag_is_a_304_without_building_anything(
    alice: Any, model: Any, monkeypatch: Any
) -> None:
    graph = make_graph(alice)
    monkeypatch.setattr(sidecar, "sidecar_gzip", lambda *a: pytest.fail("built for a 304"))
    response = client_for(alice).get(BINARY, HTTP_IF_NONE_MATCH=sidecar.etag(graph.artifact_sha256))
    assert response.status_code == 304
    assert response.content == b""
    monkeypatch.undo()
    stale = client_for(alice).get(BINARY, HTTP_IF_NONE_MATCH=f'"{graph.artifact_sha256}"')
    assert stale.status_code != 304


def test_a_private_graphs_sidecar_is_a_404_to_others_as_its_json_is(
    alice: Any, bob: Any, charlie: Any, model: Any
) -> None:
    make_graph(alice, visibility="private")
    make_graph(alice, slug="pub", visibility="public")
    make_graph(alice, slug="link", visibility="unlisted")
    assert client_for(charlie).get(BINARY).status_code == 404
    assert client_for(None).get(BINARY).status_code == 404
    assert client_for(alice).get(BINARY).status_code == 200
    for user in (alice, bob, charlie, None):
        client = client_for(user)
        for slug in ("cat", "pub", "link"):
            expected = client.get(f"/api/v1/graphs/tiny/{slug}/artifact").status_code
            got = client.get(f"/api/v1/graphs/tiny/{slug}/artifact/binary").status_code
            assert got == expected, (user, slug)


def test_it_is_made_as_the_graph_is_stored_and_served_from_storage(
    alice: Any, model: Any, monkeypatch: Any
) -> None:
    graph = make_graph(alice)
    with default_storage.open(_stored_name(graph), "rb") as handle:
        stored = gzip.decompress(handle.read())
    # Made from the document in hand: the same bytes as from the artifact read back.
    assert stored == graph_binary.encode(
        artifacts.read_document(graph.artifact_name), artifact_sha256=graph.artifact_sha256
    )
    monkeypatch.setattr(graph_binary, "encode", lambda *a, **k: pytest.fail("made again"))
    assert client_for(alice).get(BINARY).content == stored
    _forget_checked()  # another process: reads storage, checks, serves
    assert client_for(alice).get(BINARY).content == stored


def test_a_graph_stored_without_one_gets_it_on_the_first_request_once(
    alice: Any, model: Any, monkeypatch: Any
) -> None:
    graph = make_graph(alice)
    default_storage.delete(_stored_name(graph))  # as a graph stored before sidecars existed
    first = client_for(alice).get(BINARY).content
    graph_binary.verify(first, artifact_sha256=graph.artifact_sha256)
    with default_storage.open(_stored_name(graph), "rb") as handle:
        assert gzip.decompress(handle.read()) == first
    _forget_checked()
    monkeypatch.setattr(artifacts, "read_document", lambda name: pytest.fail("rebuilt"))
    assert client_for(alice).get(BINARY).content == first


def _damage_with(graph: Graph, data: bytes) -> None:
    name = _stored_name(graph)
    default_storage.delete(name)
    default_storage.save(name, ContentFile(data))
    _forget_checked()


@pytest.mark.parametrize(
    "damage",
    [
        "not gzip",
        "truncated gzip",
        "flipped byte",
        "another artifact's sidecar",
        "missing",
    ],
)
def test_a_damaged_or_missing_sidecar_is_made_again_never_served(
    damage: str, alice: Any, model: Any
) -> None:
    graph = make_graph(alice)
    make_graph(alice, slug="dog", features=[(1, 2, 1)])
    good = client_for(alice).get(BINARY).content
    with default_storage.open(_stored_name(graph), "rb") as handle:
        packed = handle.read()
    if damage == "not gzip":
        _damage_with(graph, b"hello")
    elif damage == "truncated gzip":
        _damage_with(graph, packed[: len(packed) // 2])
    elif damage == "flipped byte":
        data = bytearray(good)
        data[-3] ^= 0xFF  # in the weights: only the CRC-32 tells
        _damage_with(graph, gzip.compress(bytes(data)))
    elif damage == "another artifact's sidecar":
        _damage_with(
            graph, gzip.compress(client_for(alice).get(BINARY.replace("cat", "dog")).content)
        )
    else:
        default_storage.delete(_stored_name(graph))
        _forget_checked()
    assert client_for(alice).get(BINARY).content == good
    with default_storage.open(_stored_name(graph), "rb") as handle:
        assert gzip.decompress(handle.read()) == good  # repaired in storage too


def test_a_graph_stored_again_gets_a_new_sidecar_and_a_deleted_one_takes_its_along(
    alice: Any, model: Any, django_capture_on_commit_callbacks: Any
) -> None:
    graph = make_graph(alice)
    before = client_for(alice).get(BINARY)
    old_name = _stored_name(graph)
    with django_capture_on_commit_callbacks(execute=True):
        services.delete_graph(graph)
    assert not default_storage.exists(old_name)
    again = make_graph(alice, features=[(1, 3, 2), (2, 4, 1)])
    after = client_for(alice).get(BINARY)
    assert after["ETag"] != before["ETag"]
    graph_binary.verify(after.content, artifact_sha256=again.artifact_sha256)
    assert (
        graph_binary.decode(after.content)["nodes"] != graph_binary.decode(before.content)["nodes"]
    )


def test_a_graph_that_cannot_have_a_sidecar_is_a_404_and_its_json_still_serves(
    alice: Any, model: Any, monkeypatch: Any
) -> None:
    def refuse(document: Any, *, artifact_sha256: str) -> bytes:
        raise graph_binary.GraphBinaryError("too large for a version-1 sidecar")

    monkeypatch.setattr(graph_binary, "encode", refuse)
    graph = make_graph(alice)  # stored all the same, without a sidecar
    assert not default_storage.exists(_stored_name(graph))
    response = client_for(alice).get(BINARY)
    assert response.status_code == 404
    assert "read its JSON" in response.json()["error"]
    assert client_for(alice).get(ARTIFACT).status_code == 200


def test_the_explorer_page_offers_the_sidecar_of_a_graph_it_can_open_whole(
    alice: Any, model: Any, monkeypatch: Any
) -> None:
    make_graph(alice)
    page = reverse("graph-explorer", kwargs={"model": "tiny", "slug": "cat"})
    html = client_for(alice).get(page).content.decode()
    assert f'data-graph-binary-url="{BINARY}"' in html
    assert "max_links=" not in html
    # A big graph: still whole from the sidecar, its skeleton (the strongest links) the fallback.
    monkeypatch.setattr(pages, "LINKS_ON_DEMAND_ABOVE", 1)
    html = client_for(alice).get(page).content.decode()
    assert f'data-graph-binary-url="{BINARY}"' in html
    assert "max_links=" in html
    # Too big to open whole either way: only the skeleton, which has no sidecar.
    monkeypatch.setattr(pages, "WHOLE_FROM_SIDECAR_UP_TO", 1)
    html = client_for(alice).get(page).content.decode()
    assert "data-graph-binary-url" not in html
    assert "max_links=" in html


def test_a_graph_with_no_links_has_a_sidecar_too(alice: Any, model: Any) -> None:
    data = graph_json(features=[])
    data["links"] = []
    graph = services.import_graph_bytes(
        json.dumps(data).encode(), model_slug="tiny", slug="cat", owner=alice, visibility="public"
    )
    response = client_for(alice).get(BINARY)
    header = graph_binary.verify(response.content, artifact_sha256=graph.artifact_sha256)
    assert header.links == 0
    assert graph_binary.decode(response.content)["links"] == []
