"""Shared REST plumbing: one JSON error shape, pagination, throttles, conditional requests.

Every error body is ``{"error": "<one readable sentence>", "detail": {field: message}}``; the
field map is empty when the error is not about a field. Throttled requests get 429 with
``Retry-After`` (DRF sets the header; this handler keeps it). A Redis or Postgres outage is a 503
with ``Retry-After`` (throttles, lookups and job submission need Redis; nearly everything needs
Postgres): the client may try again, and the server recovers by itself once the service is back.
"""

from __future__ import annotations

import math
from typing import Any, TypeVar

import redis
from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig, TooManyFieldsSent
from django.core.validators import RegexValidator
from django.db import InterfaceError, OperationalError
from django.http import Http404
from drf_spectacular.utils import extend_schema_field
from rest_framework import exceptions, pagination, serializers, status, throttling
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

# Re-exported: the 413 lives with the parser, which DRF's settings load before this module.
from core.parsers import PayloadTooLarge
from core.throttling import RedisRateThrottle

# The slugs graphs are stored under: exactly what django.utils.text.slugify leaves unchanged
# (lowercase ASCII letters, digits, "_" and single "-", starting with a letter or digit and
# ending in neither "-" nor "_"). As a validator, the OpenAPI schema states it as the pattern.
SLUG_PATTERN = r"^[a-z0-9](?:_*(?:[a-z0-9]|-(?=[a-z0-9_])))*$"
SLUG_MESSAGE = "use only lowercase letters, numbers, hyphens and underscores"


def slug_field(**options: Any) -> serializers.CharField:
    """A graph slug as a request field: at most 100 characters, ``SLUG_PATTERN``."""
    return serializers.CharField(
        max_length=100, validators=[RegexValidator(SLUG_PATTERN, SLUG_MESSAGE)], **options
    )


F = TypeVar("F", bound=serializers.Field)


def documented(field_class: type[F], schema: dict[str, Any], **options: Any) -> F:
    """A ``field_class`` request field whose OpenAPI schema is ``schema``: the shape or bounds its
    serializer's own validation enforces, which drf-spectacular cannot see (a bare JSONField
    would be documented as "anything", a bound checked in ``validate`` not at all)."""
    subclass = extend_schema_field(schema)(
        type(f"Documented{field_class.__name__}", (field_class,), {})
    )
    field: F = subclass(**options)
    return field


def _flatten(detail: Any, prefix: str = "") -> dict[str, str]:
    """DRF's nested error detail as {"field[0].sub": "message"}."""
    if isinstance(detail, dict):
        out: dict[str, str] = {}
        for key, value in detail.items():
            if isinstance(key, int):  # a ListField's errors are keyed by item index
                name = f"{prefix}[{key}]"
            else:
                name = str(key) if not prefix else f"{prefix}.{key}"
            if key == "non_field_errors" and not prefix:
                name = "non_field_errors"
            out.update(_flatten(value, name))
        return out
    if isinstance(detail, list):
        if all(not isinstance(item, dict | list) for item in detail):
            return {prefix or "non_field_errors": " ".join(str(item) for item in detail)}
        out = {}
        for i, item in enumerate(detail):
            if item:
                out.update(_flatten(item, f"{prefix}[{i}]"))
        return out
    return {prefix or "non_field_errors": str(detail)}


_TITLES = {
    400: "invalid request",
    401: "authentication required",
    403: "permission denied",
    404: "not found",
    405: "method not allowed",
    406: "not acceptable",
    409: "conflict",
    413: "too large",
    415: "unsupported media type",
    429: "too many requests",
    503: "service unavailable",
}
# Seconds a client is told to wait when a service the request needs is down.
OUTAGE_RETRY_AFTER_S = 10


def error_body(error: str, detail: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    return {"error": error, "detail": detail or {}, **extra}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig | TooManyFieldsSent):
        exc = PayloadTooLarge(
            f"the request body is over the {settings.DATA_UPLOAD_MAX_MEMORY_SIZE:,}-byte limit "
            "(DATA_UPLOAD_MAX_MEMORY_SIZE)"
            if isinstance(exc, RequestDataTooBig)
            else "the request has too many fields"
        )
    elif isinstance(exc, redis.RedisError):
        exc = ServiceUnavailable("Redis (rate limits, queue, cache) is unavailable; try again soon")
    elif isinstance(exc, OperationalError | InterfaceError):
        exc = ServiceUnavailable("the database is unavailable; try again soon")
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten(exc.detail)
        first_field, first_message = next(iter(fields.items()), ("", "invalid request"))
        error = (
            first_message
            if first_field == "non_field_errors"
            else f"{first_field}: {first_message}"
        )
        response.data = error_body(error, fields)
    elif isinstance(exc, exceptions.Throttled):
        seconds = getattr(exc, "wait", None)
        wait = math.ceil(seconds) if seconds is not None else None
        message = "too many requests" + (f"; try again in {wait} s" if wait is not None else "")
        response.data = error_body(message, retry_after=wait)
    elif isinstance(exc, exceptions.APIException):
        detail = exc.detail
        if isinstance(detail, dict) and "error" in detail:
            response.data = detail
        else:
            message = (
                str(detail)
                if not isinstance(detail, dict | list)
                else _TITLES.get(response.status_code, "error")
            )
            fields = _flatten(detail) if isinstance(detail, dict | list) else {}
            response.data = error_body(message, fields)
        if isinstance(exc, ServiceUnavailable):
            response.data["retry_after"] = exc.wait
    return response


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "conflict"
    default_code = "conflict"


class ServiceUnavailable(exceptions.APIException):
    """A service the request needs is down; ``Retry-After`` says when to try again."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "service unavailable"
    default_code = "unavailable"
    wait = OUTAGE_RETRY_AFTER_S  # DRF sends it as Retry-After


class PageNumberPagination(pagination.PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


class WriteThrottle(throttling.ScopedRateThrottle, RedisRateThrottle):
    """Writes (create/update/delete) share one budget per user or IP; reads are free."""

    scope_attr = "throttle_scope"

    def allow_request(self, request: Request, view: Any) -> bool:
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return True
        if getattr(view, self.scope_attr, None) is None:
            view.throttle_scope = "writes"
        return super().allow_request(request, view)


class UploadThrottle(RedisRateThrottle):
    scope = "uploads"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        if request.method != "POST":
            return None
        ident = (
            request.user.pk
            if request.user and request.user.is_authenticated
            else self.get_ident(request)
        )
        return self.cache_format % {"scope": self.scope, "ident": ident}


class LookupThrottle(RedisRateThrottle):
    scope = "lookups"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        ident = (
            request.user.pk
            if request.user and request.user.is_authenticated
            else self.get_ident(request)
        )
        return self.cache_format % {"scope": self.scope, "ident": ident}


def query_param(request: Request, name: str, *, max_length: int = 500) -> str:
    """A query parameter, stripped and cut to ``max_length``; "" when absent.

    A NUL character is a 400 here: Postgres text cannot hold one, so it would otherwise be a 500.
    """
    value = request.query_params.get(name) or ""
    if "\x00" in value:
        raise exceptions.ValidationError({name: "must not contain NUL characters"})
    return value.strip()[:max_length]


def parse_if_match(value: str | None) -> int | None:
    """The version named by an If-Match header: ``"3"``, ``W/"3"`` or ``3``; None when absent."""
    if not value:
        return None
    value = value.strip()
    if value.startswith("W/"):
        value = value[2:]
    value = value.strip('"')
    if value.startswith("v"):
        value = value[1:]
    if not value.isdigit() or len(value) > 9:
        raise exceptions.ValidationError({"If-Match": 'expected the version number, e.g. "3"'})
    return int(value)
