"""Under CI=true a skipped test fails the run (tests/plugins/ci_skips.py); elsewhere it skips."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.foundation.conftest import ROOT

TESTS = """
import pytest

def test_skipped_in_the_body():
    pytest.skip("no Chromium at /nowhere")

@pytest.mark.skipif(True, reason="the frontend is not built")
def test_skipped_by_a_mark():
    pass

@pytest.mark.xfail(reason="a known failure")
def test_expected_to_fail():
    raise AssertionError
"""


def run(tmp_path: Path, ci: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_skips.py").write_text(TESTS)
    env = {**os.environ, "CI": ci, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:django", "-p", "no:cacheprovider",
         "-p", "tests.plugins.ci_skips", "-c", os.devnull, "-q", "-rA", str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize("ci", ["", "false"])
def test_outside_ci_a_missing_piece_skips_with_its_reason(tmp_path: Path, ci: str) -> None:
    result = run(tmp_path, ci)
    assert result.returncode == 0, result.stdout
    assert "2 skipped, 1 xfailed" in result.stdout


@pytest.mark.parametrize("ci", ["true", "1"])
def test_under_ci_a_skip_fails_the_run_and_names_what_was_missing(tmp_path: Path, ci: str) -> None:
    result = run(tmp_path, ci)
    assert result.returncode == 1, result.stdout
    assert "1 failed, 1 xfailed, 1 error" in result.stdout
    assert "skipped under CI=true, where every test must run: Skipped: no Chromium at /nowhere" in (
        result.stdout
    )
    assert "Skipped: the frontend is not built" in result.stdout
