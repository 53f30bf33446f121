"""The Celery app shared by the web process (which only sends) and the workers.

Queues: ``default`` for light jobs (imports, indexing, health probes) and ``gpu`` for attribution
and steering; per-model GPU queues (``gpu.<model-slug>``) are added by the job system. The web
process sends tasks by their explicit name, so it never imports worker code (or torch).

Jobs (docs/jobs.md): the web process sends ``inference.*`` tasks to the model's own queue,
``gpu.<model-slug>`` (jobs/dispatch.py ``queue_for``); a worker consumes the queues of the models
it serves. Workers import ``inference.tasks`` (which loads the engine lazily in the pool child)
and run the job reaper on their timer (jobs/worker.py, added to the worker's steps by
jobs/apps.py once Django is set up). This module imports no app, so every app may import it.
"""

from __future__ import annotations

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

app = Celery("webapp")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = (Queue("default"), Queue("gpu"))
app.conf.task_routes = {"inference.*": {"queue": "gpu"}}
app.autodiscover_tasks()
# Only workers import these (web processes send by name): the bridge to the engine.
app.conf.imports = ("inference.tasks",)
