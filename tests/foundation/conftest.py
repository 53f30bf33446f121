from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.processes import child_env

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def worker_env(transactional_db: None) -> dict[str, str]:
    """Environment for a child process that must see the test database (not the dev one)."""
    return child_env()
