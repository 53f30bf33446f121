"""Run numpy's matrix products on one thread while an analysis computes.

Why: numpy's OpenBLAS splits every matrix product over all the cores, and each product waits
until all its threads have run. On a machine whose cores are busy (the web server's other
requests, workers, other services), that wait is most of the time: on the 2-core development
machine at load average 8, a (283, 1280) @ (1280, 283) product took 84 ms on two threads and
2 ms on one, and supernode suggestions for a 5,000-node graph spent 2.4 s of 4.4 s waiting so
(docs/analysis.md). A web process already runs requests side by side, so one thread per product
loses little even on an idle machine.

OpenBLAS reads ``OPENBLAS_NUM_THREADS`` only when it loads, and its thread count is one setting
for the whole process, so ``one_thread()`` sets it through the library's own function for as
long as any caller is inside, and restores it when the last one leaves. Where numpy uses another
BLAS, or the library cannot be found (not Linux), it changes nothing.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any

# Imported so that numpy's BLAS is loaded before /proc/self/maps is read for it.
import numpy  # noqa: F401

# numpy's wheels ship OpenBLAS with prefixed, 64-bit-integer symbols; a system OpenBLAS has the
# plain names.
_SYMBOLS = (
    ("scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_"),
    ("scipy_openblas_set_num_threads", "scipy_openblas_get_num_threads"),
    ("openblas_set_num_threads64_", "openblas_get_num_threads64_"),
    ("openblas_set_num_threads", "openblas_get_num_threads"),
)


@dataclass(frozen=True)
class _Controls:
    set_threads: Any
    get_threads: Any


def _loaded_libraries() -> list[str]:
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.rsplit("/", 1)[-1]}
    except OSError:
        return []
    return sorted(paths)


@cache
def _controls() -> _Controls | None:
    for path in _loaded_libraries():
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for set_name, get_name in _SYMBOLS:
            if hasattr(library, set_name) and hasattr(library, get_name):
                set_threads, get_threads = getattr(library, set_name), getattr(library, get_name)
                set_threads.argtypes, set_threads.restype = [ctypes.c_int], None
                get_threads.argtypes, get_threads.restype = [], ctypes.c_int
                return _Controls(set_threads, get_threads)
    return None


def threads() -> int | None:
    """The BLAS thread count now (None: not an OpenBLAS this module can set)."""
    controls = _controls()
    return None if controls is None else int(controls.get_threads())


_lock = threading.Lock()
_inside = 0
_saved = 0


@contextmanager
def one_thread() -> Iterator[None]:
    """Inside, numpy's matrix products use one thread (module docstring)."""
    global _inside, _saved
    controls = _controls()
    if controls is None:
        yield
        return
    with _lock:
        if _inside == 0:
            _saved = int(controls.get_threads())
            controls.set_threads(1)
        _inside += 1
    try:
        yield
    finally:
        with _lock:
            _inside -= 1
            if _inside == 0:
                controls.set_threads(_saved)
