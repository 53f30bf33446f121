"""The explorer's API types are generated from frontend/src/api/openapi.yaml (npm run api-types),
so that file must be the schema the server serves now: a server change that was not carried into
it (npm run api-schema) would leave the frontend typed against an API that no longer exists."""

from __future__ import annotations

from pathlib import Path

from django.core.management import call_command

ROOT = Path(__file__).resolve().parents[2]


def test_the_committed_openapi_file_is_the_servers_schema(tmp_path: Path) -> None:
    fresh = tmp_path / "openapi.yaml"
    call_command("spectacular", "--file", str(fresh))
    committed = ROOT / "frontend" / "src" / "api" / "openapi.yaml"
    assert fresh.read_text() == committed.read_text(), (
        "frontend/src/api/openapi.yaml is stale: run `cd frontend && npm run api-schema && "
        "npm run api-types` and commit both files"
    )


def test_the_generate_requests_target_is_typed_not_an_empty_schema() -> None:
    import yaml

    schema = yaml.safe_load((ROOT / "frontend" / "src" / "api" / "openapi.yaml").read_text())
    for name in ("GenerateRequest", "GenerateBatchRequest"):
        target = schema["components"]["schemas"][name]["properties"]["target"]
        assert target["type"] == "object"
        assert set(target["properties"]) == {"tokens", "logit_diff"}
        token = target["properties"]["tokens"]["items"]["oneOf"]
        assert {t["type"] for t in token} == {"integer", "string"}
