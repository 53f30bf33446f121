"""``/healthz``: is every part of the service up? 200 when all are, 503 naming what is down."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import redis
from celery.exceptions import TimeoutError as CeleryTimeout
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from core.celery import app as celery_app

_TIMEOUT_S = 1.0
_PROBE_TIMEOUT_S = 5.0


def _database() -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {}


def _redis() -> dict[str, Any]:
    client = redis.Redis.from_url(
        settings.REDIS_URL, socket_timeout=_TIMEOUT_S, socket_connect_timeout=_TIMEOUT_S
    )
    try:
        client.ping()
    finally:
        client.close()
    return {}


def _workers() -> dict[str, Any]:
    replies = celery_app.control.ping(timeout=_TIMEOUT_S) or []
    names = sorted(name for reply in replies for name in reply)
    if not names:
        raise RuntimeError("no Celery worker answered a ping")
    return {"workers": names}


def _queue_round_trip() -> dict[str, Any]:
    result = celery_app.send_task("webapp.probe", args=["default"], queue="default")
    try:
        reply = result.get(timeout=_PROBE_TIMEOUT_S)
    except CeleryTimeout:
        raise RuntimeError(
            f"no worker ran a probe from the default queue within {_PROBE_TIMEOUT_S:g}s"
        ) from None
    return {"probe": reply}


def _check(probe: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        details = probe()
    except Exception as exc:
        return {"ok": False, "error": str(exc) or type(exc).__name__}
    return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 1), **details}


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    checks: dict[str, Callable[[], dict[str, Any]]] = {
        "database": _database,
        "redis": _redis,
        "worker": _workers,
    }
    if request.GET.get("deep") in {"1", "true"}:
        checks["queue"] = _queue_round_trip
    components = {name: _check(probe) for name, probe in checks.items()}
    down = [name for name, result in components.items() if not result["ok"]]
    body = {"status": "ok" if not down else "down", "down": down, "components": components}
    return JsonResponse(body, status=200 if not down else 503)
