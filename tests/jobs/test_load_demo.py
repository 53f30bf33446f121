"""`manage.py load_demo` (run by `manage.py up`): the demo pack goes through the ordinary paths —
model registration, dashboard import, attribution jobs on a real worker — and a second run only
checks."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError

from features.models import Feature, LanguageModel
from graphs.models import Graph, GraphNode
from jobs.models import Job
from tests.jobs.conftest import Worker, start_worker, wait_for

pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PACK = Path(settings.BASE_DIR) / "inference" / "packs" / "demo"


def _load() -> str:
    out = io.StringIO()
    call_command("load_demo", stdout=out)
    return out.getvalue()


def test_the_demo_pack_is_registered_imported_and_its_sample_graphs_generated(
    tmp_path: Path, started_workers: list[Worker]
) -> None:
    samples = len(json.loads((PACK / "prompts.json").read_text()))
    first = _load()
    assert f"{samples} sample graph(s) queued" in first, first
    model = LanguageModel.objects.get(slug="demo")
    assert model.default_transcoder_set is not None
    assert model.default_transcoder_set.source == "inference/packs/demo/transcoders"
    per_layer = model.default_transcoder_set.features_per_layer
    assert Feature.objects.filter(transcoder_set=model.default_transcoder_set).count() == (
        per_layer * model.n_layers
    )
    jobs = list(Job.objects.filter(model=model))
    assert jobs, "the sample prompts were not queued"

    worker = start_worker([jobs[0].queue], tmp_path)
    started_workers.append(worker)
    wait_for(
        lambda: not Job.objects.filter(model=model).active().exists(),
        timeout=240,
        what="the demo graphs",
        worker=worker,
    )
    assert sorted(Job.objects.filter(model=model).values_list("status", flat=True)) == [
        "succeeded"
    ] * len(jobs)
    graphs = Graph.objects.filter(model=model)
    assert graphs.count() == len(jobs)
    assert all(g.featured and g.visibility == "public" for g in graphs)
    assert GraphNode.objects.filter(graph__in=graphs).exists()

    # A second start only checks: nothing queued again, nothing imported twice.
    assert "0 sample graph(s) queued" in _load()
    assert Job.objects.filter(model=model).count() == len(jobs)


def test_a_missing_pack_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    (tmp_path / "transcoders").mkdir()
    (tmp_path / "transcoders" / "config.yaml").write_text("{}")
    with pytest.raises(CommandError, match=r"--pack: .*prompts.json is missing"):
        call_command("load_demo", pack=tmp_path)
