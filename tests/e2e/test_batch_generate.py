"""Batch generation from the generate page (issue 18), in a real browser on a desktop and on a
390×844 phone, with screenshots under test-output/e2e: the list is checked before it is sent
(its size limit, by name) and by the API (each line over the model's token cap, by line number)
with nothing queued, a .txt file fills it, and the queued batch opens on My jobs, which follows
its jobs as they run and end. No worker runs: the test moves the jobs' rows itself."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User

from features.models import LanguageModel
from graphs import services as graph_services
from jobs.models import Job
from tests.api.conftest import N_LAYERS, graph_json
from tests.e2e.conftest import log_in, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

BATCH_PAGE = re.compile(r".*/me/jobs\?batch=[0-9a-f-]{36}$")
WORDS = ["the", "cat", "dog", "bird", "sat", "ran", "on", "mat", "today"]


@pytest.fixture
def words_model(tmp_path: Path) -> LanguageModel:
    """A model whose local tokenizer.json the web process counts prompts with: one token a
    word, so "the dog sat on the mat today" is 7 tokens plus the special first one."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"<bos>": 0, **{w: i + 1 for i, w in enumerate(WORDS)}}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<bos>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    model = LanguageModel.objects.create(
        slug="words", display_name="Words", source=str(tmp_path), n_layers=N_LAYERS,
        d_model=4, vocab_size=100, max_prompt_tokens=5,
    )  # fmt: skip
    model.default_transcoder_set = model.transcoder_sets.create(slug="plt", features_per_layer=8)
    model.save(update_fields=["default_transcoder_set"])
    return model


def shot(page: Any, out: Path, name: str) -> None:
    page.screenshot(path=str(out / f"batch-{name}.png"), full_page=True)


def errors_under(page: Any, field: str) -> list[str]:
    return [t.strip() for t in page.locator(f"#id_{field}-errors li").all_inner_texts()]


def test_a_batch_is_checked_then_queued_then_followed_on_my_jobs(
    page: Any,
    live_server: Any,
    alice: User,
    words_model: LanguageModel,
    sent: list[Job],
    settings: Any,
    tmp_path: Path,
    output_dir: Path,
) -> None:
    settings.JOBS_BATCH_MAX_PROMPTS = 3
    base = live_server.url
    log_in(page, base, "alice")
    page.goto(f"{base}/generate?model=words")
    assert page.locator("#id_prompt").is_visible()
    assert not page.locator("#id_prompts").is_visible()
    page.check("#id_mode_1")
    assert page.locator("#id_prompts").is_visible()
    assert not page.locator("#id_prompt").is_visible()

    # Over the size limit: said as it is typed and on submit, naming the limit; nothing sent.
    page.fill("#id_prompts", "the cat\nthe dog\nthe bird\nthe mat")
    assert "at most 3 in one batch" in page.inner_text("#batch-status")
    page.click("#generate-submit")
    assert errors_under(page, "prompts") == [
        "4 prompts: at most 3 in one batch (JOBS_BATCH_MAX_PROMPTS)."
    ]

    # Over the model's token cap: the API names the line (blank lines counted), queues nothing.
    page.fill("#id_prompts", "the cat sat\n\nthe dog sat on the mat today\nthe bird")
    assert page.inner_text("#generate-submit") == "Generate 3 graphs"
    page.click("#generate-submit")
    page.locator("#id_prompts-errors li").first.wait_for()
    assert errors_under(page, "prompts") == [
        "Line 3: the prompt has 8 tokens; words allows at most 5"
    ]
    assert "Nothing was queued" in page.inner_text("#generate-errors")
    shot(page, output_dir, "generate-line-too-long")
    assert not Job.objects.exists()

    # A .txt file fills the list (a byte-order mark and Windows line ends are no part of it).
    listing = tmp_path / "prompts.txt"
    listing.write_bytes("\ufeffthe cat sat\r\n\r\nthe dog ran\r\n".encode())
    page.set_input_files("#id_prompts_file", str(listing))
    wait_until(page, "document.querySelectorAll('#batch-list li').length === 2")
    # (a textarea keeps its line ends as "\n")
    assert page.input_value("#id_prompts") == "the cat sat\n\nthe dog ran\n"
    items = page.locator("#batch-list li")
    assert [items.nth(i).get_attribute("value") for i in range(2)] == ["1", "3"]
    page.locator("details.advanced summary").click()
    page.fill("#id_max_n_logits", "7")
    shot(page, output_dir, "generate-from-file")
    page.click("#generate-submit")
    page.wait_for_url(BATCH_PAGE)

    jobs = list(Job.objects.order_by("created_at"))
    assert [j.params["prompt"] for j in jobs] == ["the cat sat", "the dog ran"]
    assert {j.params["max_n_logits"] for j in jobs} == {7}
    assert len({j.batch_id for j in jobs}) == 1
    assert sent == jobs
    assert page.inner_text("h1") == "Batch of 2 prompts"
    assert page.inner_text("#batch-counts") == "2 queued"

    # The page follows the jobs while they run, and shows how each ended.
    first, second = jobs
    Job.objects.filter(pk=first.pk).update(status="running", phase="features", percent=40)
    row = f'tr[data-job="{first.pk}"] .job-status'
    wait_until(
        page, f"document.querySelector('{row}').textContent.trim() === 'Running: features (40%)'"
    )
    assert page.inner_text("#batch-counts") == "1 queued, 1 running"
    shot(page, output_dir, "batch-running")
    document = graph_json(slug="cat-sat")
    graph = graph_services.import_graph_bytes(
        json.dumps(document).encode(), model_slug="words", owner=alice, visibility="private"
    )
    Job.objects.filter(pk=first.pk).update(status="succeeded", percent=100, graph=graph)
    Job.objects.filter(pk=second.pk).update(status="failed", error="out of memory")
    page.wait_for_selector(f'tr[data-job="{second.pk}"] button:text("Re-run")')
    link = page.locator(f'tr[data-job="{first.pk}"] .job-prompt a')
    assert link.get_attribute("href") == f"/graphs/words/{graph.slug}"
    assert "out of memory" in page.inner_text(f'tr[data-job="{second.pk}"]')
    assert page.inner_text("#batch-counts") == "1 succeeded, 1 failed"
    shot(page, output_dir, "batch-done")
    assert page.errors == []


def test_batch_mode_and_its_batch_fit_a_phone(
    browser: Any,
    live_server: Any,
    alice: User,
    words_model: LanguageModel,
    sent: list[Job],
    output_dir: Path,
) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    try:
        base = live_server.url
        log_in(page, base, "alice")
        page.goto(f"{base}/generate?model=words")
        page.check("#id_mode_1")
        long_line = " ".join(["the cat sat on the mat"] * 20)
        page.fill("#id_prompts", f"the cat sat\n{long_line}\nthe dog ran")
        shot(page, output_dir, "generate-390")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.fill("#id_prompts", "the cat sat\nthe dog ran")
        page.click("#generate-submit")
        page.wait_for_url(BATCH_PAGE)
        Job.objects.filter(pk=sent[0].pk).update(status="running", phase="features", percent=55)
        wait_until(page, "document.querySelector('progress.job-bar') !== null")
        shot(page, output_dir, "batch-390")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
    finally:
        context.close()
