"""frontend/src/contract.gen.ts is what contract.typescript writes today."""

from __future__ import annotations

from contract import typescript


def test_the_generated_typescript_file_is_fresh() -> None:
    assert typescript.PATH.read_text() == typescript.render(), (
        "frontend/src/contract.gen.ts is stale: run .venv/bin/python -m contract.typescript"
    )
