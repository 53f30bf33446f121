"""GET /api/v1/graph-diff: who may compare which graphs, and what comes back."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache

from features.models import LanguageModel, TranscoderSet
from graphs import services
from graphs.models import Graph
from tests.analysis.builders import N_LAYERS, document
from tests.conftest import client_for

URL = "/api/v1/graph-diff"


@pytest.fixture(autouse=True)
def _isolated(settings: Any, tmp_path: Any) -> Any:
    settings.MEDIA_ROOT = str(tmp_path / "media")
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def model(db: None) -> LanguageModel:
    lm = LanguageModel.objects.create(
        slug="tiny", display_name="Tiny", n_layers=N_LAYERS, d_model=16, vocab_size=1000
    )
    TranscoderSet.objects.create(model=lm, slug="plt", features_per_layer=1000)
    TranscoderSet.objects.create(model=lm, slug="other", features_per_layer=1000)
    return lm


def store(
    slug: str,
    owner: User,
    tokens: list[str],
    features: dict[tuple[int, int, int], tuple[float, float]],
    *,
    visibility: str = "public",
    model: str = "tiny",
    transcoder_set: str = "plt",
) -> Graph:
    """A graph whose every feature links to its error node with weight = its activation."""
    last = len(tokens) - 1
    links = {(f"{k[0]}_{k[1]}_{k[2]}", f"1_-1_{last}"): act for k, (act, _) in features.items()}
    return services.import_graph_bytes(
        json.dumps(document(tokens, features, links)).encode(),
        model_slug=model,
        transcoder_set_slug=transcoder_set,
        slug=slug,
        owner=owner,
        visibility=visibility,
    )


@pytest.fixture
def pair(alice: User, model: LanguageModel) -> tuple[Graph, Graph]:
    a = store(
        "france", alice, ["<bos>", "The", " France"], {(0, 1, 2): (2.0, 0.1), (1, 2, 1): (1.0, 0.5)}
    )
    b = store(
        "germany",
        alice,
        ["<bos>", "The", " Germany"],
        {(0, 1, 2): (3.0, 0.2), (0, 7, 2): (1.0, 0.3)},
    )
    return a, b


def query(a: Graph, b: Graph, **extra: str) -> dict[str, str]:
    return {"a": f"{a.model.slug}/{a.slug}", "b": f"{b.model.slug}/{b.slug}", **extra}


def test_it_returns_the_diff_of_two_readable_graphs(pair: tuple[Graph, Graph]) -> None:
    a, b = pair
    response = client_for(None).get(URL, query(a, b))
    assert response.status_code == 200
    body = response.json()
    assert (body["a"]["slug"], body["b"]["slug"]) == ("france", "germany")
    assert body["b"]["page_url"] == "/graphs/tiny/germany"
    assert body["alignment"][-1] == {"a": 2, "b": 2, "same_token": False}
    assert body["summary"]["feature"] == {"shared": 1, "only_a": 1, "only_b": 1}
    shared = next(n for n in body["nodes"] if n["id_a"] == "0_1_2")
    assert (shared["status"], shared["delta_activation"]) == ("shared", 1.0)
    assert shared["patch"] == {
        "layer": 0,
        "position": 2,
        "feature": 1,
        "action": "set",
        "value": 3.0,
    }
    assert body["patch_limit"] >= 1


def test_a_private_graph_of_someone_else_is_a_404_on_either_side(
    pair: tuple[Graph, Graph], bob: User
) -> None:
    a, b = pair
    Graph.objects.filter(pk=b.pk).update(visibility="private")
    assert client_for(bob).get(URL, query(a, b)).status_code == 404
    assert client_for(bob).get(URL, query(b, a)).status_code == 404
    assert client_for(None).get(URL, query(a, b)).status_code == 404
    assert client_for(a.owner).get(URL, query(a, b)).status_code == 200


def test_an_unlisted_graph_may_be_compared_by_anyone_with_its_name(
    pair: tuple[Graph, Graph], bob: User
) -> None:
    a, b = pair
    Graph.objects.filter(pk=b.pk).update(visibility="unlisted")
    assert client_for(bob).get(URL, query(a, b)).status_code == 200


def test_graphs_of_different_models_are_a_400_naming_b(
    pair: tuple[Graph, Graph], alice: User
) -> None:
    LanguageModel.objects.create(
        slug="other-lm", display_name="Other", n_layers=N_LAYERS, d_model=16, vocab_size=1000
    )
    TranscoderSet.objects.create(
        model=LanguageModel.objects.get(slug="other-lm"), slug="plt", features_per_layer=1000
    )
    a, _ = pair
    c = store("elsewhere", alice, ["<bos>", "x"], {}, model="other-lm")
    response = client_for(alice).get(URL, query(a, c))
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert list(detail) == ["b"]
    assert "model 'other-lm'" in detail["b"]


def test_graphs_of_different_transcoder_sets_are_a_400_naming_b(
    pair: tuple[Graph, Graph], alice: User
) -> None:
    a, _ = pair
    c = store("other-set", alice, ["<bos>", "x"], {}, transcoder_set="other")
    response = client_for(alice).get(URL, query(a, c))
    assert response.status_code == 400
    assert "transcoder set is 'other'" in response.json()["detail"]["b"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"a": "tiny", "b": "tiny/germany"}, "a"),
        ({"a": "tiny/france"}, "b"),
        ({"a": "tiny/france", "b": "tiny/ger many"}, "b"),
        ({"a": "tiny/france", "b": "tiny/germany", "max_edges": "-1"}, "max_edges"),
        ({"a": "tiny/france", "b": "tiny/germany", "max_edges": "999999999"}, "max_edges"),
    ],
)
@pytest.mark.usefixtures("pair")
def test_malformed_parameters_are_a_400_naming_them(params: dict[str, str], field: str) -> None:
    response = client_for(None).get(URL, params)
    assert response.status_code == 400
    assert field in response.json()["detail"]


@pytest.mark.usefixtures("pair")
def test_a_graph_that_does_not_exist_is_a_404() -> None:
    response = client_for(None).get(URL, {"a": "tiny/france", "b": "tiny/nowhere"})
    assert response.status_code == 404


def test_max_edges_bounds_the_edges_but_not_the_total(pair: tuple[Graph, Graph]) -> None:
    a, b = pair
    full = client_for(None).get(URL, query(a, b)).json()
    cut = client_for(None).get(URL, query(a, b, max_edges="1")).json()
    assert full["edges_total"] == cut["edges_total"] == len(full["edges"]) > 1
    assert cut["edges"] == full["edges"][:1]


def test_a_repeated_request_is_a_304_with_the_etag(pair: tuple[Graph, Graph]) -> None:
    a, b = pair
    client = client_for(None)
    first = client.get(URL, query(a, b))
    again = client.get(URL, query(a, b), HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 304
    other = client.get(URL, query(a, b, max_edges="1"), HTTP_IF_NONE_MATCH=first["ETag"])
    assert other.status_code == 200
