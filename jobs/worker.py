"""A worker bootstep: the periodic job reaper, and (for the local all-in-one worker) consuming
the queue of every model as models are added.

It runs in each worker's main process on Celery's timer, so no extra process (beat) is needed,
and N workers reaping at once is harmless: every transition is a compare-and-set update.
jobs/apps.py adds the step to the Celery app in every process (only a worker runs it); the
imports of app code wait until the timer ticks, so importing this module stays cheap.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import bootsteps

log = logging.getLogger(__name__)


class JobsTimer(bootsteps.StartStopStep):
    requires = ("celery.worker.components:Timer",)

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self.tref: Any = None

    def start(self, worker: Any) -> None:
        from django.conf import settings

        self.tref = worker.timer.call_repeatedly(
            settings.JOBS_REAP_INTERVAL_S, self.tick, (worker,), priority=10
        )

    def stop(self, worker: Any) -> None:
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None

    def tick(self, worker: Any) -> None:
        from django.conf import settings
        from django.db import connection

        from jobs import services

        try:
            counts = services.reap()
            if any(counts.values()):
                log.warning("reaper: %(requeued)d job(s) re-queued, %(failed)d failed", counts)
            if settings.JOBS_WORKER_SERVE_ALL_MODELS:
                _consume_every_model(worker)
        except Exception:
            log.warning("the job reaper failed; it runs again in a moment", exc_info=True)
        finally:
            # The main process forks pool children: never let it hold a connection open.
            connection.close()


def _consume_every_model(worker: Any) -> None:
    from features.models import LanguageModel
    from jobs.dispatch import queue_for

    consumer = getattr(worker, "consumer", None)
    task_consumer = getattr(consumer, "task_consumer", None)
    if consumer is None or task_consumer is None:
        return
    for model in LanguageModel.objects.only("slug"):
        queue = queue_for(model)
        if not task_consumer.consuming_from(queue):
            log.info("now consuming %s", queue)
            consumer.add_task_queue(queue)
