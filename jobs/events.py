"""Job events to websockets, in order and without making the job wait on Redis.

``core.realtime.broadcast`` runs ``group_send`` through ``async_to_sync``, which builds an event
loop and a Redis connection pool per call: about 10 ms a call on a busy machine, and a job sends
several events. Here one background thread per process keeps a loop (and so its pool) alive and
sends queued events one at a time, so they arrive in the order they were queued and the engine
never waits. The message is the one ``broadcast`` sends (``forward.event`` to
``GroupEventConsumer``). A process that forks (Celery's prefork pool) gets a fresh sender in the
child, since threads do not survive a fork.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from typing import Any

from channels.layers import get_channel_layer

log = logging.getLogger(__name__)


class _Sender:
    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.queue: asyncio.Queue[tuple[str, dict[str, Any]]] | None = None
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.name = "job-events"
        self.thread.start()
        ready.wait()

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.queue = asyncio.Queue()
        ready.set()
        self.loop.run_until_complete(self._drain(self.queue))

    async def _drain(self, queue: asyncio.Queue[tuple[str, dict[str, Any]]]) -> None:
        layer = get_channel_layer()
        while True:
            group, event = await queue.get()
            try:
                if layer is not None:
                    await layer.group_send(group, {"type": "forward.event", "event": event})
            except Exception:
                # The job row holds the truth: a lost event costs a page a catch-up, not the job.
                log.warning("could not send a %s event to %s", event.get("type"), group)
            finally:
                queue.task_done()

    def send(self, group: str, event: dict[str, Any]) -> None:
        assert self.queue is not None
        self.loop.call_soon_threadsafe(self.queue.put_nowait, (group, event))

    def flush(self, timeout: float) -> None:
        assert self.queue is not None
        asyncio.run_coroutine_threadsafe(self.queue.join(), self.loop).result(timeout)


_sender: _Sender | None = None
_lock = threading.Lock()


def _get() -> _Sender:
    global _sender
    with _lock:
        if _sender is None or _sender.pid != os.getpid():
            _sender = _Sender()
        return _sender


def send(group: str, event: dict[str, Any]) -> None:
    """Queue ``event`` for every socket in ``group``; returns at once."""
    _get().send(group, event)


def flush(timeout: float = 5.0) -> None:
    """Wait until every queued event has been handed to Redis (or timeout)."""
    try:
        _get().flush(timeout)
    except Exception:
        log.warning("job events were not all sent within %s s", timeout)
