"""Security headers: a Content-Security-Policy on every page (embeds may be framed by anyone,
other pages only by us), and HTTPS-only behaviour in production (HSTS, redirect, check --deploy)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import Client

from tests.site.conftest import graph_for

ROOT = Path(__file__).resolve().parents[2]


def _directives(header: str) -> dict[str, str]:
    parts = (part.strip().split(" ", 1) for part in header.split(";") if part.strip())
    return {name: value for name, value in parts}


@pytest.mark.django_db
def test_pages_carry_a_policy_that_allows_only_our_own_scripts(client: Client) -> None:
    policy = _directives(client.get("/")["Content-Security-Policy"])
    assert policy["script-src"] == "'self'"
    assert policy["object-src"] == "'none'"
    assert policy["frame-ancestors"] == "'self'"


@pytest.mark.django_db
def test_an_embed_may_be_framed_by_other_sites_and_the_explorer_only_by_us(
    client: Client, alice: User, model: object
) -> None:
    graph = graph_for(alice, "shared", "public")
    url = f"/graphs/{graph.model.slug}/{graph.slug}"
    page = client.get(url)
    assert page.status_code == 200
    assert _directives(page["Content-Security-Policy"])["frame-ancestors"] == "'self'"
    assert page["X-Frame-Options"] == "DENY"
    embed = client.get(f"{url}?embed=1")
    assert embed.status_code == 200
    assert _directives(embed["Content-Security-Policy"])["frame-ancestors"] == "*"
    assert "X-Frame-Options" not in embed
    assert _directives(embed["Content-Security-Policy"])["script-src"] == "'self'"


def _production(script: str, tmp_path: Path, **overrides: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *script.split()]
        if script.startswith("manage.py")
        else [sys.executable, "-c", script],
        cwd=ROOT,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "webapp.settings",
            "ATLAS_VAR_DIR": str(tmp_path),
            "ATLAS_ENV": "production",
            "SECRET_KEY": "k" * 60 + "production-test-key-with-enough-variety-0123456789",
            "ALLOWED_HOSTS": "atlas.example.org",
            "DATABASE_URL": "postgres://atlas@127.0.0.1:1/atlas",
            "REDIS_URL": "redis://127.0.0.1:1/0",
            **overrides,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )


_REQUEST = """
import django
django.setup()
from django.test import Client
client = Client(HTTP_HOST="atlas.example.org")
plain = client.get("/accounts/login/")
print(plain.status_code, plain["Location"])
secure = client.get("/no-such-page", secure=True)
print(secure["Strict-Transport-Security"])
"""


def test_production_redirects_to_https_and_sends_hsts(tmp_path: Path) -> None:
    result = _production(_REQUEST, tmp_path)
    assert result.returncode == 0, result.stderr
    redirect, hsts = result.stdout.strip().splitlines()[-2:]
    assert redirect == "301 https://atlas.example.org/accounts/login/"
    assert hsts == "max-age=31536000; includeSubDomains; preload"


def test_production_settings_pass_the_deployment_checklist(tmp_path: Path) -> None:
    result = _production("manage.py check --deploy --fail-level WARNING", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
