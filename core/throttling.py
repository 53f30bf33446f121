"""DRF's rate limits decided by Redis in one round trip.

DRF's SimpleRateThrottle keeps each client's request times as a pickled list in the cache: a GET
and a SET per request, and a list of up to the rate's size (6,000 for lookups) pickled both
ways. Here the times are a sorted set, and one Lua script drops the expired ones, counts the rest
and adds this request, atomically, so parallel requests of one client cannot both take the last
slot. The meaning is DRF's: at most N requests in any window of the rate's duration. Times come
from the Redis server, so web processes on different machines agree.
"""

from __future__ import annotations

import secrets
from typing import Any

from django.core.cache import cache
from rest_framework import throttling
from rest_framework.request import Request

from core.cache import cache_redis

# KEYS[1]: the client's sorted set. ARGV: window (µs), limit, a member naming this request.
# Answers {1, 0} when allowed, else {0, µs until the oldest request in the window expires}.
_SLIDING_WINDOW = """
local now = redis.call('TIME')
local now_us = tonumber(now[1]) * 1000000 + tonumber(now[2])
local window = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_us - window)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
    local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    return {0, tonumber(oldest[2]) + window - now_us}
end
redis.call('ZADD', KEYS[1], now_us, ARGV[3])
redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000))
return {1, 0}
"""


class RedisRateThrottle(throttling.SimpleRateThrottle):
    """A SimpleRateThrottle (subclasses say whose requests count together: ``get_cache_key``)
    whose history lives in Redis and is checked and updated with one script call."""

    _wait_s: float | None = None
    # Set from the rate by SimpleRateThrottle (ScopedRateThrottle: once it knows the view).
    num_requests: int
    duration: int

    def allow_request(self, request: Request, view: Any) -> bool:
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        # A client per call (on the process's shared pool), so it follows the cache's settings.
        script = cache_redis().register_script(_SLIDING_WINDOW)
        allowed, wait_us = script(
            # Not DRF's own key: a limit set before an upgrade holds a pickled list there.
            keys=[cache.make_key(f"window:{key}")],
            args=[int(self.duration * 1_000_000), self.num_requests, secrets.token_hex(8)],
        )
        self._wait_s = None if allowed else int(wait_us) / 1_000_000
        return bool(allowed)

    def wait(self) -> float | None:
        return self._wait_s
