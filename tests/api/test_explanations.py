"""Automated explanations stored in the product: the explain_features command, resuming, and
scores in lookup, search and the feature page."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from features.models import Explanation, Feature, TranscoderSet
from tests.autointerp.stored import add_feature
from tests.autointerp.synthetic import feature, on_token
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def austin(tset: TranscoderSet) -> Feature:
    return add_feature(tset, 1, 7, feature(on_token(" Austin"), [(" Austin",)]))


def explain(*args: str) -> str:
    out = io.StringIO()
    call_command("explain_features", "--model", "tiny", *args, stdout=out)
    return out.getvalue()


def test_explain_features_stores_a_scored_token_pattern_explanation(austin: Feature) -> None:
    assert "explained" in explain("--layer", "1")
    found = Explanation.objects.get(feature=austin)
    assert found.text == 'fires on " Austin"'
    assert (found.method, found.model) == ("token-pattern", "token-pattern")
    assert found.score == pytest.approx(1.0)
    assert set(found.scores) == {"simulation", "detection", "fuzzing"}
    assert found.scores["simulation"]["judge"] == "token-pattern"
    assert found.scores["simulation"]["n_non_activating"] == 5
    assert found.details["patterns"][0]["token"] == " Austin"
    assert found.usage is None


def test_a_rerun_skips_what_is_explained_and_replace_redoes_it(austin: Feature) -> None:
    explain("--layer", "1")
    first = Explanation.objects.get(feature=austin)
    assert "0 explained" in explain("--layer", "1")
    explain("--layer", "1", "--replace")
    again = Explanation.objects.get(feature=austin)  # one row still, a new one
    assert again.pk != first.pk
    assert again.text == first.text


def test_the_llm_method_without_an_endpoint_says_what_to_set(austin: Feature) -> None:
    with pytest.raises(CommandError, match="EXPLAINER_BASE_URL"):
        explain("--method", "llm")


def test_lookup_returns_each_explanation_with_its_scores_best_first(
    austin: Feature, alice: Any
) -> None:
    Explanation.objects.create(feature=austin, text="a city", method="human", author=alice)
    explain("--layer", "1")
    body = (
        client_for(None)
        .post(
            "/api/v1/features/lookup",
            {"features": [{"model": "tiny", "set": "plt", "layer": 1, "index": 7}]},
            format="json",
        )
        .json()
    )
    explanations = body["results"][0]["explanations"]
    assert [e["text"] for e in explanations] == ['fires on " Austin"', "a city"]
    assert explanations[0]["scores"]["detection"]["value"] == 1.0
    assert explanations[0]["model"] == "token-pattern"
    assert explanations[1]["author"] == "alice"


def test_search_filters_by_minimum_score(austin: Feature, tset: TranscoderSet) -> None:
    weak = Feature.objects.create(transcoder_set=tset, layer=2, index=3)
    Explanation.objects.create(feature=weak, text="fires on city names", score=0.2)
    explain("--layer", "1")
    client = client_for(None)
    for query in ("", "&q=fires"):
        body = client.get(f"/api/v1/features/search?min_score=0.5{query}").json()
        assert [(r["layer"], r["index"]) for r in body["results"]] == [(1, 7)], query
    assert client.get("/api/v1/features/search?min_score=much").status_code == 400


def test_the_feature_page_shows_each_score(austin: Feature) -> None:
    explain("--layer", "1")
    page = client_for(None).get("/features/tiny/plt/1/7").content.decode()
    assert "fires on &quot; Austin&quot;" in page
    assert "simulation 1.00" in page
    assert "detection 1.00" in page
