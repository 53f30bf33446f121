"""The jobs page: your queued, running and failed jobs with their messages; cancel and re-run."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from jobs.models import Job
from tests.site.conftest import browser

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("model")]


def job(owner: User, model: Any, status: str, **fields: Any) -> Job:
    return Job.objects.create(
        kind=Job.Kind.ATTRIBUTION, owner=owner, model=model, status=status,
        params={"prompt": f"a {status} prompt", "slug": "taken"}, queue="gpu.tiny", **fields,
    )  # fmt: skip


def test_alice_sees_her_jobs_with_the_failure_message_and_not_bobs(
    alice: User, bob: User, model: Any
) -> None:
    job(alice, model, Job.Status.FAILED, error="target.tokens[0]: 'w8 w9' is 2 tokens")
    job(alice, model, Job.Status.QUEUED)
    job(bob, model, Job.Status.QUEUED, error="bob's")
    html = browser(alice).get("/me/jobs").content.decode()
    assert "a failed prompt" in html
    assert "&#x27;w8 w9&#x27; is 2 tokens" in html
    assert "a queued prompt" in html
    assert "bob&#x27;s" not in html
    assert html.count(">Cancel</button>") == 1
    assert html.count(">Re-run</button>") == 1


def test_cancel_and_rerun_from_the_page(alice: User, bob: User, model: Any) -> None:
    queued = job(alice, model, Job.Status.QUEUED)
    failed = job(alice, model, Job.Status.FAILED, error="out of memory")
    client = browser(alice)
    assert client.post(f"/me/jobs/{queued.pk}/cancel").status_code == 302
    queued.refresh_from_db()
    assert queued.status == Job.Status.CANCELLED
    assert client.post(f"/me/jobs/{failed.pk}/rerun").status_code == 302
    again = Job.objects.exclude(pk__in=[queued.pk, failed.pk]).get()
    assert again.status == Job.Status.QUEUED
    assert again.params["prompt"] == "a failed prompt"
    assert "slug" not in again.params
    # bob can neither cancel nor re-run alice's jobs.
    assert browser(bob).post(f"/me/jobs/{failed.pk}/rerun").status_code == 404
