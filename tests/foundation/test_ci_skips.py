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


CUDA_TEST = """
import pytest

@pytest.mark.needs_cuda
def test_on_the_gpu():
    pass
"""


def test_a_needs_cuda_test_is_left_out_and_named_where_there_is_no_gpu(tmp_path: Path) -> None:
    import torch

    (tmp_path / "test_cuda.py").write_text(CUDA_TEST)
    env = {**os.environ, "CI": "true", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:django", "-p", "no:cacheprovider",
         "-p", "tests.plugins.ci_skips", "-c", os.devnull, "-q", str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if torch.cuda.is_available():
        assert "1 passed" in result.stdout, result.stdout
    else:
        assert result.returncode == 5, result.stdout  # pytest's "no tests ran": none was kept
        assert "1 deselected" in result.stdout, result.stdout
        assert "left out: test_cuda.py::test_on_the_gpu needs a CUDA device" in result.stdout
