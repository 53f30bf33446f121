"""whitenoise serves the Vite build compressed, with far-future cache headers on hashed files."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import Client, override_settings

MANIFEST = Path(settings.BASE_DIR) / "static" / "dist" / ".vite" / "manifest.json"


@pytest.fixture
def built_entry() -> str:
    if not MANIFEST.exists():
        pytest.fail("the frontend is not built: run `make frontend` (make test does)")
    return str(json.loads(MANIFEST.read_text())["src/main.ts"]["file"])


# Once for the module: the tests only read what collectstatic wrote, and each run of it
# hashes and compresses every static file again (about 22 CPU s, 30-55 s on a loaded machine).
@pytest.fixture(scope="module")
def collected(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("collected") / "staticfiles"
    with override_settings(STATIC_ROOT=root, WHITENOISE_USE_FINDERS=False):
        call_command("collectstatic", interactive=False, verbosity=0)
        yield root


def test_a_built_asset_is_served_with_a_far_future_cache_header(
    built_entry: str, collected: Path
) -> None:
    with override_settings(STATIC_ROOT=collected, WHITENOISE_USE_FINDERS=False):
        response = Client().get(f"/static/dist/{built_entry}", HTTP_ACCEPT_ENCODING="gzip")
        assert response.status_code == 200
        cache = response["Cache-Control"]
        assert "immutable" in cache
        assert "max-age=315360000" in cache
        assert response["Content-Encoding"] == "gzip"
        assert response["Content-Type"].startswith("text/javascript")


def test_an_unhashed_file_is_not_cached_forever(collected: Path) -> None:
    with override_settings(STATIC_ROOT=collected, WHITENOISE_USE_FINDERS=False):
        response = Client().get("/static/favicon.svg")
        assert response.status_code == 200
        assert "immutable" not in response.get("Cache-Control", "")


@pytest.mark.django_db
def test_the_home_page_links_the_built_bundle(built_entry: str) -> None:
    response = Client().get("/")
    assert response.status_code == 200
    assert f"/static/dist/{built_entry}" in response.content.decode()
