from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"

    def ready(self) -> None:
        # The reaper's bootstep joins the Celery app here, not where the app is made, so the
        # Celery app imports no app. A worker sets Django up (Celery's Django fixup) before it
        # builds its bootsteps, so every worker has the step; other processes never run it.
        from core.celery import app
        from jobs.worker import JobsTimer

        app.steps["worker"].add(JobsTimer)
