from __future__ import annotations

import os
import socket
from pathlib import Path

import dj_database_url
import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def worker_env(transactional_db: None) -> dict[str, str]:
    """Environment for a child process that must see the test database (not the dev one)."""
    config = settings.DATABASES["default"]
    url = dj_database_url.parse(os.environ["DATABASE_URL"])
    test_name = config["NAME"]  # pytest-django has switched NAME to the test database by now
    assert url["NAME"] != test_name
    base = os.environ["DATABASE_URL"].rsplit("/", 1)[0]
    return {**os.environ, "DATABASE_URL": f"{base}/{test_name}"}
