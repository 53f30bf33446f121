"""The transcoder set page in a real browser: the owner's dashboards form shows the API's errors by
field, uploads a corpus, follows the job to the end (here run by the worker's code in this
process), and the imported layers then show on the page and on their feature pages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from features.models import Feature, TranscoderSet
from inference.tasks import run_job
from jobs.models import Job
from tests.e2e.conftest import log_in
from tests.engine.builders import D_TRANSCODER
from tests.jobs.conftest import register_model, tiny_pack  # noqa: F401 (fixture)
from tests.jobs.test_dashboards_worker import corpus_text

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_the_owner_computes_dashboards_from_the_set_page(
    page: Any,
    live_server: Any,
    alice: Any,
    tiny_pack: tuple[Path, Path],  # noqa: F811
    settings: Any,
    tmp_path: Path,
) -> None:
    settings.DASHBOARDS_WORK_DIR = tmp_path / "work"
    settings.DASHBOARDS_CORPUS_ROOTS = [tmp_path / "corpora"]
    model = register_model("tiny-page", tiny_pack)
    TranscoderSet.objects.filter(model=model).update(owner=alice)
    corpus = tmp_path / "notes.txt"
    corpus.write_bytes(corpus_text())
    base = live_server.url
    log_in(page, base, "alice")
    page.goto(f"{base}/features/tiny-page/plt")

    # No corpus: said under the upload field, nothing sent.
    page.click("#dashboards-submit")
    page.locator("[data-field=corpus_file] .field-errors", has_text="choose a corpus").wait_for()
    # A server path outside the allowed folders: the API's 400, under the path field.
    page.fill("#id_corpus_path", str(corpus))
    page.click("#dashboards-submit")
    page.locator(
        "[data-field=corpus_path] .field-errors", has_text="outside the folders"
    ).wait_for()
    assert not Job.objects.exists()

    page.fill("#id_corpus_path", "")
    page.set_input_files("#id_corpus_file", str(corpus))
    page.fill("#id_max_tokens", "2000")
    page.check("input[name=layers][value='0']")
    page.check("input[name=layers][value='2']")
    page.click("#dashboards-submit")
    page.locator("#dashboards-status", has_text="Queued").wait_for(timeout=20_000)
    job = Job.objects.get(kind="dashboards")
    assert (job.params["layers"], job.params["max_tokens"]) == ([0, 2], 2000)
    # No worker process in this test: run the job here, through the worker's own code.
    assert run_job(str(job.id), "test-worker") == "succeeded", Job.objects.get(pk=job.pk).error

    # The page reloads once the job is done: the two layers now have dashboards.
    page.locator("tr[data-layer='2'] .with-dashboard", has_text=str(D_TRANSCODER)).wait_for(
        timeout=30_000
    )
    assert page.locator("tr[data-layer='1'] .with-dashboard").inner_text() == "0"
    assert page.locator("#dashboards-jobs", has_text="succeeded").count() == 1
    page.locator("tr[data-layer='0'] td a").first.click()
    page.wait_for_url(f"{base}/features/tiny-page/plt/0/*")
    assert page.locator("ol.examples li.example").count() > 0
    assert Feature.objects.filter(layer=1).count() == 0
    assert page.errors == []
