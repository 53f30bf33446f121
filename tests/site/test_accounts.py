"""Sign up, log in and out, and reset a forgotten password."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse

pytestmark = pytest.mark.django_db
User = get_user_model()
PASSWORD = "a-long-unusual-passphrase-17"


def _sign_up(
    client: Client, username: str = "alice", email: str = "alice@example.org"
) -> _MonkeyPatchedWSGIResponse:
    return client.post(
        "/accounts/signup/",
        {"username": username, "email": email, "password1": PASSWORD, "password2": PASSWORD},
    )


def test_signing_up_creates_the_account_and_logs_in() -> None:
    client = Client()
    response = _sign_up(client)
    assert response.status_code == 302
    assert User.objects.get(username="alice").email == "alice@example.org"
    assert "alice" in client.get("/").content.decode()


def test_sign_up_shows_field_errors_inline() -> None:
    _sign_up(Client())
    response = Client().post(
        "/accounts/signup/",
        {"username": "alice2", "email": "ALICE@example.org", "password1": "x", "password2": "y"},
    )
    page = response.content.decode()
    assert response.status_code == 400
    assert 'id="id_email-errors"' in page
    assert "An account with this email exists" in page
    assert 'id="id_password2-errors"' in page
    assert User.objects.count() == 1


def test_the_password_hints_are_listed_one_by_one_not_run_together() -> None:
    page = Client().get("/accounts/signup/").content.decode()
    hints = re.search(r'<ul class="help help-list">(.*?)</ul>', page, re.S)
    assert hints is not None
    items = re.findall(r"<li>(.*?)</li>", hints.group(1))
    assert len(items) >= 2
    assert all(item.strip().endswith(".") for item in items)


def test_a_username_with_markup_is_refused_with_a_message() -> None:
    response = _sign_up(Client(), username="eve<script>", email="eve@example.org")
    assert response.status_code == 400
    assert 'id="id_username-errors"' in response.content.decode()
    assert not User.objects.filter(email="eve@example.org").exists()


def test_logging_in_and_out() -> None:
    User.objects.create_user("bob", "bob@example.org", PASSWORD)
    client = Client()
    response = client.post("/accounts/login/", {"username": "bob", "password": "wrong"})
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()
    response = client.post("/accounts/login/", {"username": "bob", "password": PASSWORD})
    assert response.status_code == 302
    assert "bob" in client.get("/").content.decode()
    assert client.post("/accounts/logout/").status_code == 302
    assert 'href="/accounts/login/"' in client.get("/").content.decode()


def test_logging_out_needs_a_post_with_a_csrf_token() -> None:
    User.objects.create_user("bob", "bob@example.org", PASSWORD)
    client = Client(enforce_csrf_checks=True)
    client.login(username="bob", password=PASSWORD)
    assert client.post("/accounts/logout/").status_code == 403
    assert client.get("/accounts/logout/").status_code == 405


def test_a_forgotten_password_is_reset_through_the_emailed_link() -> None:
    User.objects.create_user("charlie", "charlie@example.org", "old-passphrase-that-is-long")
    client = Client()
    assert (
        client.post("/accounts/password_reset/", {"email": "charlie@example.org"}).status_code
        == 302
    )
    assert len(mail.outbox) == 1
    link = re.search(r"http://testserver(/accounts/reset/\S+)", str(mail.outbox[0].body))
    assert link is not None
    form_url = client.get(link.group(1), follow=True).redirect_chain[-1][0]
    response = client.post(form_url, {"new_password1": PASSWORD, "new_password2": PASSWORD})
    assert response.status_code == 302
    assert Client().login(username="charlie", password=PASSWORD)


def test_a_reset_for_an_unknown_email_reveals_nothing() -> None:
    response = Client().post("/accounts/password_reset/", {"email": "nobody@example.org"})
    assert response.status_code == 302
    assert mail.outbox == []
