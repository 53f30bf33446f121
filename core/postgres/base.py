"""Django's PostgreSQL backend, with a cheaper check before the pool lends a connection.

With CONN_HEALTH_CHECKS, Django gives the pool psycopg_pool's own check, which sends an empty
query: a round trip to Postgres on every request, while the request's thread waits. An idle
pooled connection has nothing to read, so one with bytes waiting (Postgres's "terminating
connection" notice on a restart, or the closed socket itself) is the one that may be broken,
and only that one gets the real check. settings.py selects this backend for the web process.
"""

from __future__ import annotations

import select
from typing import Any

import psycopg
from django.db.backends.postgresql import base
from psycopg_pool import ConnectionPool


def check_connection(conn: psycopg.Connection[Any]) -> None:
    """Raise if ``conn`` is broken (the pool then discards it and lends another)."""
    if conn.closed:
        raise psycopg.OperationalError("the connection is closed")
    readable, _, _ = select.select([conn.fileno()], [], [], 0)
    if readable:
        ConnectionPool.check_connection(conn)


class DatabaseWrapper(base.DatabaseWrapper):
    @property
    def pool(self) -> ConnectionPool | None:
        created = self.alias not in self._connection_pools  # type: ignore[attr-defined]
        pool: ConnectionPool | None = super().pool
        if created and pool is not None and self.settings_dict["CONN_HEALTH_CHECKS"]:
            # Django passes the pool's check itself and takes no other; the pool keeps it here.
            pool._check = check_connection
        return pool
