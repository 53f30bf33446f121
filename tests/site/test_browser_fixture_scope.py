"""The browser tests share one Chromium for their whole package (tests/e2e/conftest.py), and it
lifts Django's async-safety check while it is open. This module is collected after tests/e2e (the
suite runs its packages in name order), so in a full run it checks that the lift ended with the
package: a browser fixture widened to the session would leave every later test without the check."""

from __future__ import annotations

import os


def test_the_browser_tests_leave_the_async_safety_check_on_for_later_packages() -> None:
    assert "DJANGO_ALLOW_ASYNC_UNSAFE" not in os.environ
