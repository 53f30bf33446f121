"""The jobs page: your queued, running and failed jobs with their messages; cancel and re-run."""

from __future__ import annotations

import uuid
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


def test_a_batch_shows_only_its_jobs_in_submission_order_with_their_counts(
    alice: User, bob: User, model: Any
) -> None:
    batch = uuid.uuid4()
    job(alice, model, Job.Status.SUCCEEDED, batch_id=batch)
    job(alice, model, Job.Status.QUEUED, batch_id=batch)
    job(alice, model, Job.Status.FAILED, error="out of memory")  # not in the batch
    html = browser(alice).get(f"/me/jobs?batch={batch}").content.decode()
    assert "Batch of 2 prompts" in html
    assert "1 succeeded, 1 queued" in html
    assert html.index("a succeeded prompt") < html.index("a queued prompt")
    assert "a failed prompt" not in html
    assert f'data-batch-url="/api/v1/batches/{batch}"' in html
    assert "/assets/batch-" in html  # the script that follows it while a job is active
    # The full list links each batched job to its batch.
    assert f"?batch={batch}" in browser(alice).get("/me/jobs").content.decode()
    # Someone else's batch, a made-up one and a malformed id are no batch.
    assert browser(bob).get(f"/me/jobs?batch={batch}").status_code == 404
    assert browser(alice).get(f"/me/jobs?batch={uuid.uuid4()}").status_code == 404
    assert browser(alice).get("/me/jobs?batch=null").status_code == 404


def test_cancelling_from_a_batch_goes_back_to_the_batch_never_elsewhere(
    alice: User, model: Any
) -> None:
    batch = uuid.uuid4()
    queued = job(alice, model, Job.Status.QUEUED, batch_id=batch)
    other = job(alice, model, Job.Status.QUEUED)
    client = browser(alice)
    back = f"/me/jobs?batch={batch}"
    response = client.post(f"/me/jobs/{queued.pk}/cancel", {"next": back})
    assert response.status_code == 302
    assert response["Location"] == back
    response = client.post(f"/me/jobs/{other.pk}/cancel", {"next": "https://evil.example/"})
    assert response["Location"] == "/me/jobs"
