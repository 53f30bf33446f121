"""Anonymous graph lists from Redis: one round trip instead of two queries and a serializer.

Only requests without a user are answered from here, and such a request lists public graphs
of public models only (``Graph.objects.listed_for``), so a cached page can hold nothing that
its next anonymous reader may not see: no private or unlisted graph, nobody's own list. The key
is the whole URL with its host (the page's ``next``/``previous`` links are absolute).

Freshness: every entry carries the generation it was computed under, and any write that can
change a list (a graph, its model or transcoder set, its owner's name) moves the generation on,
and again once its transaction commits. The generation and the entry come back in one ``MGET``;
an entry of an older generation is recomputed, so an edit is visible to the next request. A
reader that started before a write stores its page under the generation it read first, which
the commit moves past. Entries also expire after ``GRAPH_LIST_CACHE_S`` seconds, for writes that
go around the ORM's signals (raw SQL, a data migration's ``update()``). Without Redis the list
is computed as before: reads never depended on it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from redis.exceptions import RedisError
from rest_framework.request import Request
from rest_framework.response import Response

logger = logging.getLogger(__name__)

GENERATION_KEY = "graph-lists:generation"


def _entry_key(request: Request) -> str:
    url = request.build_absolute_uri()
    return "graph-lists:page:" + hashlib.sha256(url.encode()).hexdigest()


def changed() -> None:
    """A write that can change a graph list: move the generation on now and again when its
    transaction commits (a reader between the two stores its page under the first, which the
    second retires; a transaction that rolls back costs a recomputed page)."""
    _next_generation()
    transaction.on_commit(_next_generation)


def _next_generation() -> None:
    try:
        if not cache.add(GENERATION_KEY, 1, timeout=None):
            cache.incr(GENERATION_KEY)
    except RedisError:
        # Redis is down, so nothing can be read from the cache either; entries written
        # before it went expire on their own.
        logger.warning("graph list cache: could not move the generation on", exc_info=True)


def answer(request: Request, compute: Callable[[], Response]) -> Response:
    """``compute()``'s answer for an anonymous request, from the cache when it is current."""
    if request.user.is_authenticated or settings.GRAPH_LIST_CACHE_S == 0:
        return compute()
    key = _entry_key(request)
    try:
        found = cache.get_many([GENERATION_KEY, key])
    except RedisError:
        return compute()
    generation = found.get(GENERATION_KEY, 0)
    entry: tuple[int, Any] | None = found.get(key)
    if entry is not None and entry[0] == generation:
        return Response(entry[1])
    response = compute()
    if response.status_code == 200:
        with contextlib.suppress(RedisError):
            cache.set(key, (generation, response.data), timeout=settings.GRAPH_LIST_CACHE_S)
    return response


def connect_signals() -> None:
    """Move the generation on for every ORM write to what a graph list shows or filters on."""
    from django.contrib.auth import get_user_model
    from django.db.models.signals import post_delete, post_save

    from features.models import LanguageModel, TranscoderSet
    from graphs.models import Graph

    def receiver(**kwargs: Any) -> None:
        # A sign-in saves only the user's ``last_login``, which no list shows; moving the
        # generation on for it would retire the anonymous cache at every login.
        if kwargs.get("update_fields") == frozenset({"last_login"}):
            return
        changed()

    # Not GraphNode: its rows (what ``feature=`` filters on) are written and deleted with their
    # graph's, in the same transaction, and a receiver would cost graph deletes Django's fast
    # path (every node row loaded to be signalled).
    for model in (Graph, LanguageModel, TranscoderSet, get_user_model()):
        for signal in (post_save, post_delete):
            signal.connect(
                receiver,
                sender=model,
                weak=False,
                dispatch_uid=f"graph-lists-{model.__name__}-{signal is post_save}",
            )
