"""Every model of the data issue has a working admin page."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from features.models import Explanation, Feature
from tests.api.conftest import make_graph
from webapp.auth import create_token

pytestmark = pytest.mark.django_db

PAGES = [
    "features/languagemodel",
    "features/transcoderset",
    "features/feature",
    "features/activationexample",
    "features/explanation",
    "features/featureimport",
    "graphs/graph",
    "graphs/graphnode",
    "graphs/subgraph",
    "webapp/apitoken",
]


@pytest.mark.parametrize("page", PAGES)
def test_staff_see_the_admin_list_and_first_object_of(page: str, alice: Any, tset: Any) -> None:
    make_graph(alice)
    feature = Feature.objects.create(transcoder_set=tset, layer=0, index=1)
    Explanation.objects.create(feature=feature, text="<b>cats</b>")
    create_token(alice, "laptop")
    admin = User.objects.create_superuser("root", password="pw-root-123")
    client = Client()
    client.force_login(admin)
    response = client.get(f"/admin/{page}/")
    assert response.status_code == 200
    assert b"&lt;b&gt;cats" in response.content or page != "features/explanation"
