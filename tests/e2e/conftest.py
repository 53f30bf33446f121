"""Browser tests of the graph explorer: Debian's Chromium driven by Playwright against Django's
live server on the test database. Skipped, with the reason, where Chromium, Playwright or the
built frontend is missing, so `make test` passes on a laptop without them; under CI=true that skip
fails the run instead (tests/plugins/ci_skips.py)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PASSWORDS

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
MANIFEST = ROOT / "static" / "dist" / ".vite" / "manifest.json"
OUTPUT = ROOT / "test-output" / "e2e"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def _skip_reason() -> str | None:
    if not CHROMIUM.exists():
        return f"no Chromium at {CHROMIUM} (.ci/run installs Debian's chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    if not MANIFEST.exists() or "src/explorer/main.ts" not in MANIFEST.read_text():
        return "the frontend is not built (cd frontend && npm run build)"
    return None


# One Chromium for the whole tests/e2e package, not one per module: starting Playwright's driver
# and the browser is seconds each time on a loaded 2-core machine, and every test still gets a
# fresh context (cookies, storage, viewport) from `page`. Package scope, not session: the fixture
# ends after the last e2e test, so the event loop and the flag below never reach other packages.
@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    # The sync Playwright API keeps an event loop in this thread while it is open, and Django
    # refuses ORM calls next to a running loop; the tests' own ORM calls are plain synchronous
    # ones, so allow them, for this package only (other test packages keep the check).
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as pw:
            instance = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            yield instance
            instance.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


def log_in(page: Any, base: str, name: str) -> None:
    """Sign ``name`` (one of tests.conftest's people) in through the login page."""
    page.goto(f"{base}/accounts/login/")
    page.fill("#id_username", name)
    page.fill("#id_password", PASSWORDS[name])
    page.click("form button[type=submit]")
    page.wait_for_url(f"{base}/")


def wait_until(page: Any, expression: str, timeout_s: float = 30.0) -> None:
    """Wait until ``expression`` is truthy in the page. Playwright's ``wait_for_function`` evals
    its predicate inside the page, which the site's Content-Security-Policy forbids (no
    'unsafe-eval'); ``page.evaluate`` runs over the DevTools protocol, which CSP does not bind."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g}s waiting for {expression}")
        page.wait_for_timeout(50)


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 950})
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    yield page
    context.close()


@pytest.fixture
def output_dir() -> Path:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    return OUTPUT


@pytest.fixture(autouse=True)
def _media(settings: Any, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = str(tmp_path / "media")


def import_synthetic(
    n_nodes: int, n_links: int, *, slug: str, seed: int = 0, with_dashboards: bool = True
) -> Any:
    """A public synthetic graph (and dashboards for a few of its features) in the database."""
    from features.models import (
        ActivationExample,
        Explanation,
        Feature,
        LanguageModel,
        TranscoderSet,
        Visibility,
        refresh_explanations,
    )
    from graphs import services
    from tests.e2e.synthetic_graph import WORDS, synthetic_graph

    document = synthetic_graph(n_nodes, n_links, slug=slug, seed=seed)
    n_layers = 16
    model, _ = LanguageModel.objects.get_or_create(
        slug="synthetic",
        defaults={
            "display_name": "Synthetic",
            "n_layers": n_layers,
            "d_model": 64,
            "vocab_size": 1000,
        },
    )
    tset, _ = TranscoderSet.objects.get_or_create(
        model=model, slug="clt", defaults={"features_per_layer": 16384}
    )
    if model.default_transcoder_set_id is None:
        model.default_transcoder_set = tset
        model.save(update_fields=["default_transcoder_set"])
    graph = services.import_graph_bytes(
        json.dumps(document).encode(),
        model_slug="synthetic",
        transcoder_set_slug="clt",
        slug=slug,
        owner=None,
        visibility=Visibility.PUBLIC,
    )
    keys = sorted(
        {
            tuple(int(p) for p in node["node_id"].split("_")[:2])
            for node in document["nodes"]
            if node["feature_type"] == "cross layer transcoder"
        }
    )
    if with_dashboards:
        Feature.objects.bulk_create(
            [
                Feature(
                    transcoder_set=tset,
                    layer=layer,
                    index=index,
                    density=10 ** -(1 + (index % 5)),
                    act_min=0.0,
                    act_max=12.0,
                    max_activation=12.0,
                    histogram=[40, 22, 14, 9, 6, 4, 3, 2, 1, 1],
                    top_logits=[" Austin", " Texas", " capital"],
                    bottom_logits=[" the", " of"],
                )
                for layer, index in keys
            ],
            ignore_conflicts=True,
        )
        # ignore_conflicts leaves the primary keys unset: read the rows back.
        features = list(Feature.objects.filter(transcoder_set=tset, explanations__isnull=True))
        Explanation.objects.bulk_create(
            [
                Explanation(feature=f, text=f"mentions of {WORDS[f.index % len(WORDS)]}")
                for f in features
            ]
        )
        # Bulk inserts bypass Explanation.save, which keeps Feature.top_explanations current.
        refresh_explanations([f.pk for f in features])
        ActivationExample.objects.bulk_create(
            [
                ActivationExample(
                    feature=f,
                    rank=0,
                    tokens=["The", " capital", " of", " Texas", " is", " Austin"],
                    values=[0.0, 1.5, 0.2, 8.0, 0.5, 3.0],
                    max_value=8.0,
                    max_index=3,
                )
                for f in features
            ]
        )
    return graph
