"""What the graph-diff endpoint keeps in memory between requests, bounded in bytes.

Reading a stored 10,000-node graph (gunzip and JSON parse) and preparing it for a diff costs
more than the diff itself, and encoding the answer's JSON about as much again, so this process
keeps the most recently used prepared graphs and encoded diffs (least recently used dropped
first, ``ANALYSIS_CACHE_MB`` in all; 0 keeps nothing). Entries are keyed by the artifacts'
names and SHA-256s: storing a graph again gives it a new artifact, so an entry can never be
stale, and one no request names any more ages out. Nothing here decides who may see a graph:
the view checks that before asking for anything.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

from django.conf import settings

from analysis import diff
from graphs import artifacts

T = TypeVar("T")


class _SizedCache:
    """Values with their sizes, least recently used dropped first beyond a budget."""

    def __init__(self) -> None:
        self._items: OrderedDict[tuple[Any, ...], tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get_or_make(
        self, key: tuple[Any, ...], make: Callable[[], T], size: Callable[[T], int]
    ) -> T:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key][0]
        # Made outside the lock: two requests may both make one value, neither waits on the other.
        value = make()
        budget = settings.ANALYSIS_CACHE_MB * 1024 * 1024
        nbytes = size(value)
        if nbytes <= budget:
            with self._lock:
                if key not in self._items:
                    self._items[key] = (value, nbytes)
                    self._bytes += nbytes
                while self._bytes > budget:
                    _, (_, dropped) = self._items.popitem(last=False)
                    self._bytes -= dropped
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0

    def __len__(self) -> int:
        return len(self._items)


cache = _SizedCache()


def prepared_graph(artifact_name: str, artifact_sha256: str) -> diff.PreparedGraph:
    """The stored graph, read and prepared for diffs (analysis.diff.prepare)."""
    return cache.get_or_make(
        ("graph", artifact_name, artifact_sha256),
        lambda: diff.prepare(artifacts.read_document(artifact_name)),
        diff.PreparedGraph.approximate_bytes,
    )


def encoded(key: tuple[Any, ...], make: Callable[[], bytes]) -> bytes:
    """Bytes made by ``make`` (an encoded answer), kept under ``key``."""
    return cache.get_or_make(("encoded", *key), make, len)
