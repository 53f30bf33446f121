"""Circuit Atlas project package: settings, URLs, ASGI and Celery apps, shared API plumbing."""

from core.celery import app as celery_app

__all__ = ["celery_app"]
