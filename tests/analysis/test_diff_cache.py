"""The graph-diff endpoint keeps prepared graphs and encoded diffs in memory: a second request
reads no artifact, a changed artifact is read again, and access is still checked every time."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User

from analysis import diff_cache
from analysis.diff import diff_graphs
from graphs import artifacts
from graphs.models import Graph
from tests.analysis.builders import document
from tests.analysis.test_diff_api import URL, model, query, store  # noqa: F401
from tests.conftest import client_for


@pytest.fixture(autouse=True)
def _isolated(settings: Any, tmp_path: Any) -> Any:
    settings.MEDIA_ROOT = str(tmp_path / "media")
    diff_cache.cache.clear()
    yield
    diff_cache.cache.clear()


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The artifacts read from storage, in order."""
    names: list[str] = []
    real = artifacts.read_document

    def counting(name: str) -> dict[str, Any]:
        names.append(name)
        return real(name)

    monkeypatch.setattr(artifacts, "read_document", counting)
    return names


FRANCE = {(0, 1, 2): (2.0, 0.1), (1, 2, 1): (1.0, 0.5)}
GERMANY = {(0, 1, 2): (3.0, 0.2), (0, 7, 2): (1.0, 0.3)}


@pytest.fixture
def pair(alice: User, model: Any) -> tuple[Graph, Graph]:  # noqa: F811
    return (
        store("france", alice, ["<bos>", "The", " France"], FRANCE),
        store("germany", alice, ["<bos>", "The", " Germany"], GERMANY),
    )


def test_a_second_request_for_the_pair_reads_no_artifact(
    pair: tuple[Graph, Graph], reads: list[str]
) -> None:
    a, b = pair
    first = client_for(None).get(URL, query(a, b))
    assert sorted(reads) == sorted([a.artifact_name, b.artifact_name])
    again = client_for(None).get(URL, query(a, b))
    assert len(reads) == 2
    assert again.content == first.content
    client_for(None).get(URL, query(a, b, max_edges="1"))
    assert len(reads) == 2


def test_comparing_a_kept_graph_with_a_third_reads_only_the_third(
    pair: tuple[Graph, Graph], reads: list[str], alice: User
) -> None:
    a, b = pair
    client_for(None).get(URL, query(a, b))
    c = store("spain", alice, ["<bos>", "The", " Spain"], {(0, 1, 2): (1.0, 0.4)})
    assert client_for(None).get(URL, query(a, c)).status_code == 200
    assert reads[2:] == [c.artifact_name]


def test_the_answer_is_the_diff_of_the_two_documents(pair: tuple[Graph, Graph]) -> None:
    a, b = pair
    body = client_for(None).get(URL, query(a, b)).json()
    expected = diff_graphs(
        artifacts.read_document(a.artifact_name), artifacts.read_document(b.artifact_name)
    )
    assert list(body) == [
        "a", "b", "alignment", "summary", "nodes", "edges", "edges_total", "patch_limit"
    ]  # fmt: skip
    assert body["alignment"] == [vars(p) for p in expected.alignment]
    assert body["nodes"] == json.loads(json.dumps(expected.nodes))
    assert body["edges"] == expected.edges
    assert (body["summary"], body["edges_total"]) == (expected.summary, expected.edges_total)


def test_a_graph_stored_again_is_diffed_from_its_new_artifact(
    pair: tuple[Graph, Graph], reads: list[str]
) -> None:
    a, b = pair
    before = client_for(None).get(URL, query(a, b)).json()
    assert before["summary"]["feature"] == {"shared": 1, "only_a": 1, "only_b": 1}
    # B now has A's features exactly: every feature is shared and unchanged.
    stored = artifacts.write(
        document(["<bos>", "The", " Germany"], FRANCE), model_slug="tiny", slug="germany"
    )
    Graph.objects.filter(pk=b.pk).update(artifact=stored.name, artifact_sha256=stored.sha256)
    after = client_for(None).get(URL, query(a, b)).json()
    assert reads[-1] == stored.name
    assert after["summary"]["feature"] == {"shared": 2, "only_a": 0, "only_b": 0}


def test_a_caller_who_may_not_see_a_kept_graph_still_gets_a_404(
    pair: tuple[Graph, Graph], bob: User
) -> None:
    a, b = pair
    Graph.objects.filter(pk=b.pk).update(visibility="private")
    assert client_for(a.owner).get(URL, query(a, b)).status_code == 200
    assert client_for(bob).get(URL, query(a, b)).status_code == 404
    assert client_for(None).get(URL, query(b, a)).status_code == 404


def test_a_new_title_shows_although_the_diff_is_kept(pair: tuple[Graph, Graph]) -> None:
    a, b = pair
    client_for(None).get(URL, query(a, b))
    Graph.objects.filter(pk=a.pk).update(title="Paris, renamed")
    assert client_for(None).get(URL, query(a, b)).json()["a"]["title"] == "Paris, renamed"


def test_nothing_is_kept_with_a_budget_of_zero(
    pair: tuple[Graph, Graph], reads: list[str], settings: Any
) -> None:
    settings.ANALYSIS_CACHE_MB = 0
    a, b = pair
    client_for(None).get(URL, query(a, b))
    client_for(None).get(URL, query(a, b))
    assert len(reads) == 4
    assert len(diff_cache.cache) == 0


def test_the_least_recently_used_entries_go_first_beyond_the_budget(settings: Any) -> None:
    settings.ANALYSIS_CACHE_MB = 1
    kept = diff_cache._SizedCache()
    half = 512 * 1024
    for key in ("first", "second"):
        kept.get_or_make((key,), lambda: bytes(half), len)
    kept.get_or_make(("first",), lambda: b"made again", len)  # used: now the most recent
    kept.get_or_make(("third",), lambda: bytes(half), len)
    assert kept.get_or_make(("first",), lambda: b"made again", len) == bytes(half)
    assert kept.get_or_make(("second",), lambda: b"made again", len) == b"made again"
