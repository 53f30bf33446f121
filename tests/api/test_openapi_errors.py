"""The OpenAPI schema documents the error responses, in the one shape the API sends them."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from rest_framework.test import APIClient

ERROR = {"$ref": "#/components/schemas/Error"}


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    from drf_spectacular.generators import SchemaGenerator

    return yaml.safe_load(yaml.safe_dump(SchemaGenerator().get_schema(request=None, public=True)))


def _error_schema(operation: dict[str, Any], code: str) -> Any:
    return operation["responses"][code]["content"]["application/json"]["schema"]


def test_every_operation_documents_the_errors_it_can_give(schema: dict[str, Any]) -> None:
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            expected = {"400", "401", "403", "429", "503"}
            expected |= {"404"} if "{" in path else set()
            expected |= {"413"} if method in {"post", "put", "patch"} else set()
            expected |= {"409"} if method in {"put", "patch"} else set()
            assert expected <= set(operation["responses"]), (method, path)


def test_errors_share_one_shape_and_throttling_and_outages_say_when_to_retry(
    schema: dict[str, Any],
) -> None:
    assert schema["components"]["schemas"]["Error"]["required"] == ["error", "detail"]
    lookup = schema["paths"]["/api/v1/features/lookup"]["post"]
    for code in ("400", "413", "429", "503"):
        assert _error_schema(lookup, code) == ERROR
    assert "Retry-After" in lookup["responses"]["503"]["headers"]
    patch = schema["paths"]["/api/v1/subgraphs/{share_slug}"]["patch"]
    assert _error_schema(patch, "409") == ERROR


@pytest.mark.django_db
def test_a_real_error_matches_the_documented_shape(anon: APIClient, schema: dict[str, Any]) -> None:
    import jsonschema

    body = anon.post("/api/v1/features/lookup", {"features": "nope"}, format="json").json()
    jsonschema.validate(body, schema["components"]["schemas"]["Error"])
    assert set(body) == {"error", "detail"}
