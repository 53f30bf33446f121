"""One Redis connection pool per server and process, for the cache and the rate limits.

Django makes a new cache object for every async context, and under the ASGI server every request
runs in one of its own: with Django's own pool class each request opened a new pool, so a new TCP
connection (with its handshake) to Redis. Handing every cache object the same pool keeps the
connections open across requests. redis-py's pool notices a fork and starts over in the child,
so this is safe in Celery's prefork children too.
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar

import redis
from django.conf import settings


class SharedConnectionPool(redis.ConnectionPool):
    """``from_url`` answers the pool already made for the same URL and options, if any."""

    _pools: ClassVar[dict[tuple[str, str], redis.ConnectionPool]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> Any:
        key = (url, repr(sorted(kwargs.items())))
        with cls._lock:
            pool = cls._pools.get(key)
            if pool is None:
                pool = cls._pools[key] = super().from_url(url, **kwargs)
            return pool


def cache_redis() -> redis.Redis:
    """A client of the cache's Redis database, on the cache's own shared pool."""
    location = str(settings.CACHES["default"]["LOCATION"])
    return redis.Redis(connection_pool=SharedConnectionPool.from_url(location))
