"""The Celery app for test workers: the real one, plus an optional pause after each progress
report (``TEST_JOBS_PROGRESS_DELAY_S``) or after each layer a dashboards job imports
(``TEST_JOBS_LAYER_DELAY_S``) so a test can act while a job is mid-run.

The pause is patched into the engine inside the pool child, so production code has no test hook.
"""

from __future__ import annotations

import os
import time
from typing import Any

from celery.signals import worker_process_init

from core.celery import app

__all__ = ["app"]


@worker_process_init.connect
def _slow_down_progress(**_: Any) -> None:
    delay = float(os.environ.get("TEST_JOBS_PROGRESS_DELAY_S", "0") or 0)
    if delay <= 0:
        return
    from inference import engine

    real = engine.attribute

    def slow(*args: Any, on_progress: Any = None, **kwargs: Any) -> Any:
        def progress(phase: str, fraction: float) -> None:
            if on_progress is not None:
                on_progress(phase, fraction)
            time.sleep(delay)

        return real(*args, on_progress=progress, **kwargs)

    engine.attribute = slow


@worker_process_init.connect
def _slow_down_layers(**_: Any) -> None:
    delay = float(os.environ.get("TEST_JOBS_LAYER_DELAY_S", "0") or 0)
    if delay <= 0:
        return
    from inference import engine

    real = engine.compute_dashboards

    def slow(*args: Any, on_layer: Any = None, **kwargs: Any) -> Any:
        def layer(index: int, features: Any) -> None:
            if on_layer is not None:
                on_layer(index, features)
            time.sleep(delay)

        return real(*args, on_layer=layer, **kwargs)

    engine.compute_dashboards = slow
