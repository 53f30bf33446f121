"""Celery tasks of jobs that need no model: registered by name, found by autodiscovery."""

from __future__ import annotations

from typing import Any

from celery import shared_task


@shared_task(name="jobs.explain", bind=True, ignore_result=True, acks_late=True)
def explain(self: Any, job_id: str) -> str:
    from jobs import explain as explain_job

    return explain_job.run(job_id, self.request.hostname or "worker")
