"""The transcoder set's page: its layers with their dashboards, linked from the home page and the
feature page's breadcrumb; the dashboards form only for staff and the set's owner."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from core.visibility import Visibility
from features.models import Feature, LanguageModel, TranscoderSet
from jobs.models import Job
from tests.site.conftest import browser

pytestmark = pytest.mark.django_db
URL = "/features/tiny/plt"


def test_it_lists_each_layers_features_with_dashboards_and_links_the_strongest(
    tset: TranscoderSet, feature: Feature
) -> None:
    Feature.objects.create(transcoder_set=tset, layer=2, index=7)  # stored, no dashboard yet
    page = browser(None).get(URL)
    assert page.status_code == 200
    html = page.content.decode()
    assert '<tr data-layer="2"><td>2</td><td>2</td><td class="with-dashboard">1</td>' in html
    assert 'href="/features/tiny/plt/2/42"' in html
    assert "dashboards-form" not in html


def test_home_and_the_feature_pages_breadcrumb_link_to_it(
    tset: TranscoderSet, feature: Feature
) -> None:
    assert f'href="{URL}"' in browser(None).get("/").content.decode()
    assert f'href="{URL}"' in browser(None).get(f"{URL}/2/42").content.decode()


def test_the_owner_and_staff_get_the_form_others_do_not(
    tset: TranscoderSet, alice: User, bob: User
) -> None:
    TranscoderSet.objects.update(owner=alice)
    staff = User.objects.create_user("sam", is_staff=True)
    for user in (alice, staff):
        html = browser(user).get(URL).content.decode()
        assert 'id="dashboards-form"' in html
        assert 'data-api-url="/api/v1/models/tiny/sets/plt/dashboards"' in html
    assert 'id="dashboards-form"' not in browser(bob).get(URL).content.decode()


def test_a_job_under_way_is_on_the_page_for_its_script_to_follow(
    tset: TranscoderSet, alice: User
) -> None:
    TranscoderSet.objects.update(owner=alice)
    job = Job.objects.create(
        kind=Job.Kind.DASHBOARDS, owner=alice, model=tset.model, transcoder_set=tset,
        queue="gpu.tiny", params={"corpus": "/c.txt", "corpus_source": "path"},
        result={"layers": [0]},
    )  # fmt: skip
    html = browser(alice).get(URL).content.decode()
    assert 'id="dashboards-active"' in html
    assert str(job.id) in html


def test_a_private_model_or_missing_set_is_404(tset: TranscoderSet, alice: User) -> None:
    LanguageModel.objects.update(visibility=Visibility.PRIVATE)
    assert browser(alice).get(URL).status_code == 404
    LanguageModel.objects.update(visibility=Visibility.PUBLIC)
    assert browser(alice).get("/features/tiny/nope").status_code == 404
