"""Torch side of Circuit Atlas: the attribution engine (engine/), demo pack, and the Celery bridge (tasks.py)."""
