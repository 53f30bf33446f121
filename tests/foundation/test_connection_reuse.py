"""The web process keeps its connections to Redis and Postgres across requests: one Redis pool
per process (core/cache.py), and pooled Postgres connections checked without a round trip unless
the server has said something (core/postgres)."""

from __future__ import annotations

import select
from typing import Any

import psycopg
import pytest
from django.core.cache import caches
from django.db import connection

from core.postgres.base import check_connection


def test_every_cache_object_shares_one_redis_pool() -> None:
    # Django makes a cache object per async context: each ASGI request gets a new one.
    first: Any = caches.create_connection("default")
    second: Any = caches.create_connection("default")
    assert first is not second
    pool = first._cache.get_client(write=True).connection_pool
    assert second._cache.get_client(write=True).connection_pool is pool
    first.set("reuse-probe", 1)
    assert second.get("reuse-probe") == 1


def _connect() -> psycopg.Connection[Any]:
    return psycopg.connect(**connection.get_connection_params(), autocommit=True)


@pytest.mark.django_db
def test_a_healthy_idle_connection_passes_without_a_query() -> None:
    with _connect() as conn:
        conn.execute("SELECT 1").fetchone()
        check_connection(conn)  # nothing to read: no round trip
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert conn.execute("SELECT 2").fetchone() == (2,)


@pytest.mark.django_db
def test_a_connection_the_server_ended_is_refused() -> None:
    with _connect() as victim, _connect() as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [victim.info.backend_pid])
        # The server's notice reaches the victim's socket; wait until it is readable.
        select.select([victim.fileno()], [], [], 5)
        with pytest.raises(psycopg.OperationalError):
            check_connection(victim)


def test_a_closed_connection_is_refused() -> None:
    conn = _connect()
    conn.close()
    with pytest.raises(psycopg.OperationalError):
        check_connection(conn)
