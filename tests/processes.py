"""Helpers for tests that start child processes (workers, servers) on the test database."""

from __future__ import annotations

import os

import dj_database_url
from django.conf import settings


def child_env(**extra: str) -> dict[str, str]:
    """This process's environment, with DATABASE_URL pointing at the test database.

    Call it once the test database exists (pytest-django has switched NAME to it by then).
    """
    name = settings.DATABASES["default"]["NAME"]
    assert dj_database_url.parse(os.environ["DATABASE_URL"])["NAME"] != name
    base = os.environ["DATABASE_URL"].rsplit("/", 1)[0]
    return {**os.environ, "DATABASE_URL": f"{base}/{name}", **extra}
