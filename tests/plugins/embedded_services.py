"""Pytest plugin: give the test run real Postgres and Redis before Django reads its settings.

With DATABASE_URL / REDIS_URL set (CI's service run), those servers are used as they are. Unset,
the run gets its own embedded servers under ``var/test`` — separate from the demo's, so a running
``manage.py up`` worker never picks up a test's Celery message — started here if needed and
stopped at the end if this run started them. ``ATLAS_TEST_EMBEDDED`` tells tests which it was.
"""

from __future__ import annotations

import contextlib
import os

import pytest

from webapp import embedded

_stack = contextlib.ExitStack()


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    needs_pg = not os.environ.get("DATABASE_URL")
    needs_redis = not os.environ.get("REDIS_URL")
    os.environ["ATLAS_TEST_EMBEDDED"] = "1" if needs_pg or needs_redis else "0"
    os.environ.setdefault("ATLAS_VAR_DIR", str(embedded.var_dir() / "test"))
    if needs_pg or needs_redis:
        urls = _stack.enter_context(
            embedded.services(embedded.var_dir(), postgres=needs_pg, redis=needs_redis)
        )
        os.environ.update(urls)


def pytest_unconfigure(config: pytest.Config) -> None:
    _stack.close()
