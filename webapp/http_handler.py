"""Django's ASGI handler with the middleware chain and the view run in one go, in one thread.

Django's own ASGI handler runs the middleware chain in async mode: each sync ``process_request``
and ``process_response`` (sessions, CSRF, auth, messages, CSP, ...), every sync-only middleware
(whitenoise) and the view itself is a separate trip from the event loop to the request's thread
and back, about fifteen per request here. Each trip is a thread hand-off with its futures, locks
and wake-ups, and under load they cost more of a web process's CPU than the database queries of
a graph list. All our views and middleware are sync, so this handler builds the sync chain (the
one WSGI servers run) and enters it once per request, in the thread Django's handler would have
used (the request's own, ``ThreadSensitiveContext``), so database connections and everything
thread-bound behave exactly as before. The ASGI parts stay Django's: reading the body, streaming
responses (async iterators included), client disconnects, ``request_finished``.
"""

from __future__ import annotations

from typing import Any

import django
from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIHandler
from django.http import HttpRequest, HttpResponseBase


class OneTripASGIHandler(ASGIHandler):
    def __init__(self) -> None:
        # Not ASGIHandler.__init__, which only builds the async chain.
        self.load_middleware(is_async=False)

    async def get_response_async(self, request: HttpRequest) -> HttpResponseBase:
        response: HttpResponseBase = await sync_to_async(self.get_response, thread_sensitive=True)(
            request
        )
        return response


def get_asgi_application() -> Any:
    """As ``django.core.asgi.get_asgi_application``, with the one-trip handler."""
    django.setup(set_prefix=False)
    return OneTripASGIHandler()
