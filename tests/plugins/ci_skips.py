"""Pytest plugin: under ``CI=true`` a skipped test fails the run, naming what was missing.

On a laptop a test skips, with its reason, when the machine lacks what it needs (Chromium, a built
frontend), so `make test` passes there; in CI that skip would hide a missing piece behind a green
run. Expected failures (xfail) are left as they are.

Two kinds of test are not skips but are left out, by name, in the run's summary:
- ``optional_checkpoint``: needs a model folder that a documented step caches and CI does not build
  (the Gemma-3-270M checkpoint, ``make gemma3-270m``); it runs wherever the folder exists.
- ``needs_cuda``: checks where a tensor lives on a CUDA device (on a CPU the host and the device
  are one memory, so the check means nothing); it runs wherever CUDA is available. CI has no GPU,
  so these are named in the summary instead of skipped.
- ``embedded_only``: stops and restarts the servers, which only the embedded ones allow; it runs in
  ``make test`` and ``.ci/run`` leaves it out of the rerun against the machine's own servers.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "optional_checkpoint(path, step): needs the model folder at path, made by step; "
        "left out (and named in the summary) where it is absent",
    )
    config.addinivalue_line(
        "markers", "needs_cuda: runs where CUDA is available; left out (and named) elsewhere"
    )
    config.addinivalue_line(
        "markers", "embedded_only: stops and restarts the embedded servers (never real ones)"
    )


_left_out: list[str] = []
_left_out_cuda: list[str] = []


def _cuda_available() -> bool:
    import torch  # here: only the suites that collect a needs_cuda test pay for the import

    return bool(torch.cuda.is_available())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kept, dropped = [], []
    for item in items:
        if item.get_closest_marker("needs_cuda") is not None and not _cuda_available():
            dropped.append(item)
            note = f"{item.nodeid} needs a CUDA device"
            _left_out_cuda.append(note)
            continue
        marker = item.get_closest_marker("optional_checkpoint")
        if marker is not None and not Path(marker.args[0]).exists():
            dropped.append(item)
            note = f"{marker.args[0]} is absent ({marker.args[1]} makes it)"
            if note not in _left_out:
                _left_out.append(note)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for note in _left_out:
        terminalreporter.write_line(f"left out the tests that need a model checkpoint: {note}")
    for note in _left_out_cuda:
        terminalreporter.write_line(f"left out: {note}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, Any]:
    report = yield
    if in_ci() and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, where every test must run: {reason}"
    return report
