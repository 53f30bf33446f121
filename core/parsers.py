"""The API's JSON parser (``REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"]``) and its 413.

Its own module: DRF imports the parser classes named in settings while ``rest_framework.views``
loads, and ``core.api`` imports that, so the parser cannot live there.
"""

from __future__ import annotations

import json
import math
from typing import Any

from django.conf import settings
from rest_framework import exceptions, parsers, status


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "too large"
    default_code = "too_large"


class _NotFinite(ValueError):
    pass


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # 1e999 parses as infinity
        raise _NotFinite(text)
    return value


def _no_constant(name: str) -> float:
    raise _NotFinite(name)  # NaN, Infinity, -Infinity


def _string_problem(text: str) -> str | None:
    if "\x00" in text:
        return "JSON strings must not contain NUL (\\u0000)"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "JSON strings must be valid Unicode (a lone surrogate such as \\ud800 is not)"
    return None


def _check_strings(data: Any) -> None:
    """Refuse lone surrogates and NUL in any key or string, naming where it is
    (``features[0].model``): Postgres text and jsonb hold neither, so they would fail at the
    database as a 500. Iterative: bodies may nest deeply."""
    stack: list[tuple[Any, str]] = [(data, "")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                where = f"{path}.{key}" if path else str(key)
                problem = _string_problem(key)
                if problem is not None:
                    raise exceptions.ValidationError({path or "non_field_errors": [problem]})
                stack.append((value, where))
        elif isinstance(item, list):
            stack.extend((value, f"{path}[{i}]") for i, value in enumerate(item))
        elif isinstance(item, str):
            problem = _string_problem(item)
            if problem is not None:
                raise exceptions.ValidationError({path or "non_field_errors": [problem]})


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, with what every body must meet: at most DATA_UPLOAD_MAX_MEMORY_SIZE
    bytes (413), finite numbers only (1e999, NaN and Infinity are 400: they cannot be stored or
    written back as JSON), valid Unicode strings without NUL, nesting Python can parse."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read(limit + 1)
        if len(raw) > limit:
            raise PayloadTooLarge(
                f"the request body is over the {limit:,}-byte limit (DATA_UPLOAD_MAX_MEMORY_SIZE)"
            )
        try:
            data = json.loads(raw, parse_float=_finite, parse_constant=_no_constant)
        except _NotFinite as exc:
            raise exceptions.ParseError(f"JSON numbers must be finite, got {exc}") from None
        except RecursionError:
            raise exceptions.ParseError("JSON nested too deeply") from None
        except ValueError as exc:  # UnicodeDecodeError included
            raise exceptions.ParseError(f"not valid JSON ({exc})") from None
        _check_strings(data)
        return data
