"""Site page fixtures: the API tests' model and graph builders, plus logged-in Django test
clients (the users are in tests/conftest.py)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from features.models import Explanation, Feature, TranscoderSet
from tests.api.conftest import _isolated, make_graph, model, tset

__all__ = ["_isolated", "make_graph", "model", "tset"]


def browser(user: User | None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


@pytest.fixture
def feature(tset: TranscoderSet) -> Feature:
    """L2/42, which make_graph's default graph contains."""
    f = Feature.objects.create(
        transcoder_set=tset, layer=2, index=42, density=0.01, act_max=4.0, max_activation=4.0,
        histogram=[1, 5, 3, 0, 2], top_logits=[" mat", " rug"], bottom_logits=[" sky"],
    )  # fmt: skip
    f.examples.create(rank=0, tokens=["The", " cat", " sat"], values=[0.0, 4.0, 1.0],
                      max_value=4.0, max_index=1)  # fmt: skip
    Explanation.objects.create(feature=f, text="cats <b>and</b> kittens", method="autointerp")
    return f


def graph_for(owner: User | None, slug: str, visibility: str, **kwargs: Any) -> Any:
    return make_graph(owner, slug=slug, visibility=visibility, **kwargs)
