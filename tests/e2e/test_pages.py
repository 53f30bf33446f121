"""The explorer page itself (no browser needed): who may open it, and what it tells the script."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from core.visibility import Visibility
from features.models import LanguageModel, TranscoderSet
from graphs import services
from graphs.models import Graph
from tests.e2e.conftest import MANIFEST
from tests.e2e.synthetic_graph import synthetic_graph

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(
        not MANIFEST.exists() or "src/explorer/main.ts" not in MANIFEST.read_text(),
        reason="the frontend is not built (cd frontend && npm run build)",
    ),
]


def make_graph(owner: User | None, visibility: str, slug: str = "page-test") -> Graph:
    model = LanguageModel.objects.create(
        slug="synthetic", display_name="Synthetic", n_layers=16, d_model=64, vocab_size=1000
    )
    TranscoderSet.objects.create(model=model, slug="clt", features_per_layer=16384)
    document = synthetic_graph(120, 400, slug=slug)
    return services.import_graph_bytes(
        json.dumps(document).encode(),
        model_slug="synthetic",
        transcoder_set_slug="clt",
        slug=slug,
        owner=owner,
        visibility=visibility,
    )


def test_a_public_graph_page_points_the_script_at_the_graph_and_feature_apis(
    settings: Any, tmp_path: Any
) -> None:
    settings.MEDIA_ROOT = str(tmp_path)
    make_graph(None, Visibility.PUBLIC)
    response = Client().get("/graphs/synthetic/page-test")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-graph-url="/api/v1/graphs/synthetic/page-test/artifact"' in html
    assert 'data-lookup-url="/api/v1/features/lookup"' in html
    assert 'data-neighbourhood-url="/api/v1/graphs/synthetic/page-test/neighbourhood"' in html
    assert 'data-set="clt"' in html


def test_a_private_graph_page_is_404_to_others_and_opens_for_its_owner(
    alice: User, settings: Any, tmp_path: Any
) -> None:
    settings.MEDIA_ROOT = str(tmp_path)
    make_graph(alice, Visibility.PRIVATE)
    assert Client().get("/graphs/synthetic/page-test").status_code == 404
    owner = Client()
    owner.force_login(alice)
    assert owner.get("/graphs/synthetic/page-test").status_code == 200


def test_an_unknown_graph_is_404() -> None:
    assert Client().get("/graphs/nope/nothing").status_code == 404


def test_a_big_graph_page_asks_for_a_skeleton(
    monkeypatch: pytest.MonkeyPatch, settings: Any, tmp_path: Any
) -> None:
    from graphs import pages

    settings.MEDIA_ROOT = str(tmp_path)
    monkeypatch.setattr(pages, "LINKS_ON_DEMAND_ABOVE", 100)
    make_graph(None, Visibility.PUBLIC)
    html = Client().get("/graphs/synthetic/page-test").content.decode()
    assert (
        f'data-graph-url="/api/v1/graphs/synthetic/page-test/artifact?max_links={pages.SKELETON_LINKS}"'
        in html
    )
