"""Fixtures every test package shares: the three users the access tests are written around
(alice owns things, bob is given an unlisted link, charlie has no access) and API clients
signed in as one of them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from channels.layers import channel_layers
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.contrib.auth.models import User
from django.test import override_settings
from rest_framework.test import APIClient

from jobs.models import Job

PASSWORDS = {"alice": "pw-alice-123", "bob": "pw-bob-123", "charlie": "pw-charlie-123"}


class QuickPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    """Django's PBKDF2 with 1,000 rounds instead of a million: the same algorithm and hash
    format, so a server or worker the tests start (with the real hashers) still checks these
    passwords, but 0.2 ms a hash instead of 0.2-0.4 s, which ~900 user creations and logins a
    run paid for nothing (the hashing strength is Django's, not something these tests check)."""

    iterations = 1000


@pytest.fixture(autouse=True, scope="session")
def _quick_password_hashing() -> Iterator[None]:
    with override_settings(PASSWORD_HASHERS=["tests.conftest.QuickPBKDF2PasswordHasher"]):
        yield


@pytest.fixture(autouse=True)
def _fresh_channel_layer() -> Iterator[None]:
    """Each test gets its own channel layer. channels_redis keeps asyncio locks and receive state
    from the event loop that used it, and every websocket test runs a loop of its own
    (asyncio.run): a lock an earlier test's loop left held killed a later test's consumer with
    "is bound to a different event loop", and its job's events never arrived."""
    yield
    channel_layers.backends.clear()


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
