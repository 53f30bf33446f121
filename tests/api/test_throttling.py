"""Rate limits kept in Redis and decided by one script call (core/throttling.py): DRF's meaning
(at most N requests in any window), per client, exact under parallel requests."""

from __future__ import annotations

import threading
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.core.cache import cache
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from core.api import LookupThrottle
from core.cache import cache_redis


def _request(user: Any = None, ip: str = "10.0.0.1") -> Request:
    request = Request(APIRequestFactory().post("/api/v1/features/lookup", REMOTE_ADDR=ip))
    request.user = user or AnonymousUser()
    return request


class ThreePerMinute(LookupThrottle):
    rate = "3/min"


def test_it_allows_the_rate_then_refuses_saying_how_long_to_wait() -> None:
    answers = [ThreePerMinute().allow_request(_request(), None) for _ in range(3)]
    refused = ThreePerMinute()
    assert answers == [True, True, True]
    assert refused.allow_request(_request(), None) is False
    wait = refused.wait()
    assert wait is not None
    assert 59 < wait <= 60


def test_each_client_has_its_own_budget(alice: User, bob: User) -> None:
    for _ in range(3):
        assert ThreePerMinute().allow_request(_request(alice), None)
    assert not ThreePerMinute().allow_request(_request(alice), None)
    assert ThreePerMinute().allow_request(_request(bob), None)
    assert ThreePerMinute().allow_request(_request(ip="10.0.0.2"), None)


def test_parallel_requests_never_share_the_last_slot() -> None:
    allowed: list[bool] = []
    start = threading.Barrier(20)

    def one() -> None:
        start.wait()
        allowed.append(ThreePerMinute().allow_request(_request(), None))

    threads = [threading.Thread(target=one) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(allowed) == [False] * 17 + [True] * 3


def test_a_refused_request_does_not_use_up_the_budget() -> None:
    """Only allowed requests count: refusals leave the window as it was."""
    for _ in range(3):
        ThreePerMinute().allow_request(_request(), None)
    for _ in range(5):
        ThreePerMinute().allow_request(_request(), None)
    key = cache.make_key(f"window:{ThreePerMinute().get_cache_key(_request(), None)}")
    assert cache_redis().zcard(key) == 3
