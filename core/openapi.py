"""The error responses every API operation can give, added to the OpenAPI schema.

drf-spectacular documents what a view returns on success; the errors come from one place
(``core.api.exception_handler``, the JSON parser, the throttles, the outage handling), so they are
added here, once, in the one shape they all have. Codes an operation already documents are kept.
"""

from __future__ import annotations

from typing import Any

ERROR = {
    "type": "object",
    "description": "Every API error: one readable sentence, and a message per field when the "
    "error is about fields (`{}` otherwise).",
    "properties": {
        "error": {"type": "string"},
        "detail": {"type": "object", "additionalProperties": {"type": "string"}},
        "retry_after": {
            "type": "integer",
            "description": "Seconds to wait (429 and 503), as in the Retry-After header.",
        },
    },
    "required": ["error", "detail"],
}

_ALL = {
    "400": "Invalid request: `detail` names each bad field or parameter.",
    "401": "Authentication required (a Bearer token or a session).",
    "403": "Signed in, but not allowed to do this (only owners and staff change things).",
    "429": "Rate limit reached; try again after Retry-After seconds.",
    "503": "Postgres or Redis is unavailable; try again after Retry-After seconds.",
}
_WITH_PATH_PARAMETERS = {"404": "Not found, or not visible to you (private things are 404)."}
_WRITES = {"413": "The request body is over the size limit."}
_UPDATES = {"409": "Conflict: the object changed since the version you read (If-Match)."}
_RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}}


def add_error_responses(result: dict[str, Any], **_: Any) -> dict[str, Any]:
    """drf-spectacular postprocessing hook (SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"])."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR
    reference = {"$ref": "#/components/schemas/Error"}
    for path, item in result.get("paths", {}).items():
        for method, operation in item.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            codes = dict(_ALL)
            if "{" in path:
                codes |= _WITH_PATH_PARAMETERS
            if method in {"post", "put", "patch"}:
                codes |= _WRITES
            if method in {"put", "patch"}:
                codes |= _UPDATES
            responses = operation.setdefault("responses", {})
            for code, description in sorted(codes.items()):
                if code in responses:
                    continue
                response: dict[str, Any] = {
                    "description": description,
                    "content": {"application/json": {"schema": reference}},
                }
                if code in {"429", "503"}:
                    response["headers"] = _RETRY_AFTER
                responses[code] = response
    return result
