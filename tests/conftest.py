"""Fixtures every test package shares: the three users the access tests are written around
(alice owns things, bob is given an unlisted link, charlie has no access) and API clients
signed in as one of them."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from jobs.models import Job

PASSWORDS = {"alice": "pw-alice-123", "bob": "pw-bob-123", "charlie": "pw-charlie-123"}


def make_user(name: str) -> User:
    return User.objects.create_user(name, f"{name}@example.org", PASSWORDS[name])


@pytest.fixture
def alice(db: None) -> User:
    return make_user("alice")


@pytest.fixture
def bob(db: None) -> User:
    return make_user("bob")


@pytest.fixture
def charlie(db: None) -> User:
    return make_user("charlie")


def client_for(user: User | None) -> APIClient:
    """An API client signed in as `user`, or an anonymous one for None."""
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


@pytest.fixture
def anon() -> APIClient:
    return client_for(None)


@pytest.fixture
def as_alice(alice: User) -> APIClient:
    return client_for(alice)


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[Job]:
    """Record the jobs that would go to the broker instead of sending them: no message leaves
    (no worker would take it), and the jobs stay queued for the test to run or inspect."""
    from jobs import dispatch

    messages: list[Job] = []
    monkeypatch.setattr(dispatch, "send", messages.append)
    return messages
