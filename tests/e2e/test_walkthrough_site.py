"""The site-side fixes from the researcher's walkthrough (issue 18), in a real browser, each with
a screenshot under test-output/e2e: the API docs offline, the tokens page after a refresh, the
generate form's target fields, and the generate page on a phone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User

from features.models import LanguageModel, TranscoderSet
from tests.e2e.conftest import log_in

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def shot(page: Any, out: Path, name: str) -> None:
    page.screenshot(path=str(out / f"walkthrough-{name}.png"), full_page=True)


@pytest.fixture
def tiny_model(db: Any) -> LanguageModel:
    model = LanguageModel.objects.create(
        slug="tiny", display_name="Tiny", n_layers=4, d_model=16, vocab_size=100
    )
    model.default_transcoder_set = TranscoderSet.objects.create(
        model=model, slug="plt", features_per_layer=1000
    )
    model.save(update_fields=["default_transcoder_set"])
    return model


def test_the_api_docs_render_with_no_request_leaving_the_server(
    page: Any, live_server: Any, output_dir: Path
) -> None:
    base = live_server.url
    elsewhere: list[str] = []

    def only_ours(route: Any) -> None:
        if route.request.url.startswith(base):
            route.continue_()
        else:  # as offline: nothing outside the server answers
            elsewhere.append(route.request.url)
            route.abort()

    page.route("**/*", only_ours)
    violations: list[str] = []
    page.on(
        "console", lambda m: violations.append(m.text) if "Content Security" in m.text else None
    )
    page.goto(f"{base}/api/docs/")
    page.locator(".swagger-ui .info .title").filter(has_text="Circuit Atlas API").wait_for()
    page.locator(".opblock-tag").first.wait_for()
    shot(page, output_dir, "api-docs")
    assert elsewhere == []
    assert violations == []
    assert page.errors == []


def test_refreshing_the_tokens_page_makes_no_second_token_and_shows_it_whole(
    page: Any, live_server: Any, alice: User, output_dir: Path
) -> None:
    from webapp.models import ApiToken

    base = live_server.url
    log_in(page, base, "alice")
    page.goto(f"{base}/me/tokens")
    page.fill("#id_name", "notebook")
    page.click("form.narrow button[type=submit]")
    page.wait_for_url(f"{base}/me/tokens")
    token = page.input_value("#new-token")
    assert token.startswith("ca_")
    box = page.locator("#new-token")
    # The whole token is visible in its box: nothing scrolled out of sight.
    width = box.evaluate("e => [e.scrollWidth, e.clientWidth]")
    assert width[0] <= width[1], width
    shot(page, output_dir, "token-created")
    page.reload()
    assert ApiToken.objects.filter(user__username="alice").count() == 1
    assert token not in page.content()


def _visible(page: Any, name: str) -> bool:
    return bool(page.locator(f'[data-field="{name}"]').is_visible())


def test_the_target_fields_show_only_for_the_kind_of_target_chosen(
    page: Any, live_server: Any, alice: User, tiny_model: LanguageModel, output_dir: Path
) -> None:
    base = live_server.url
    log_in(page, base, "alice")
    page.goto(f"{base}/generate")
    shown = {name: _visible(page, name) for name in ("target_tokens", "target_a", "target_b")}
    assert shown == {"target_tokens": False, "target_a": False, "target_b": False}
    shot(page, output_dir, "generate-top-tokens")
    page.select_option("#id_target_kind", "tokens")
    assert _visible(page, "target_tokens")
    assert not _visible(page, "target_a")
    page.select_option("#id_target_kind", "logit_diff")
    assert _visible(page, "target_a")
    assert _visible(page, "target_b")
    assert not _visible(page, "target_tokens")


def test_the_generate_page_fits_a_phone(
    browser: Any, live_server: Any, alice: User, tiny_model: LanguageModel, output_dir: Path
) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    try:
        log_in(page, live_server.url, "alice")
        page.goto(f"{live_server.url}/generate")
        page.locator("details.advanced summary").click()
        for kind in ("top", "tokens", "logit_diff"):
            page.select_option("#id_target_kind", kind)
            width = page.evaluate("document.documentElement.scrollWidth")
            shot(page, output_dir, f"generate-390-{kind}")
            assert width <= 390, f"with {kind}, the page is {width} px wide on a 390 px screen"
    finally:
        context.close()
