"""Plumbing every app shares: the REST error shape and throttles, the Celery app, websocket
broadcasting, and who may see what. It imports no app, so any app may import it."""
