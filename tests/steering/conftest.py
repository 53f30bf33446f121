"""Fixtures for the steering tests: the jobs tests' tiny random Llama (a worker loads it from
disk), the engine's graph of a prompt (imported as a graph of that model), and a
recorder that stands in for the broker."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache

from features.models import LanguageModel
from graphs import services
from graphs.models import Graph
from jobs.models import Job
from tests.jobs.conftest import register_model, tiny_pack

__all__ = ["tiny_pack"]

SLUG = "tiny-steer"
PROMPT = "w5 w6 w7 w8"  # 5 tokens with the special first one


@pytest.fixture(autouse=True)
def _isolated(settings: Any, tmp_path: Path) -> Any:
    settings.MEDIA_ROOT = str(tmp_path / "media")
    # Jobs run in this process inside the test's transaction, which a heartbeat written from the
    # heartbeat thread's own connection cannot see: it would take the job for lost.
    settings.JOBS_HEARTBEAT_INTERVAL_S = 3600
    cache.clear()  # throttle counters and tokenize counts
    yield
    cache.clear()


@pytest.fixture
def tiny(tiny_pack: tuple[Path, Path], db: None) -> LanguageModel:
    return register_model(SLUG, tiny_pack)


def run_queued(sent: list[Job]) -> list[str]:
    """Run every recorded job in this process, as a worker would; returns their outcomes."""
    from inference import tasks

    outcomes = [tasks.run_job(str(job.pk), "test@worker") for job in sent]
    sent.clear()
    return outcomes


@pytest.fixture(scope="session")
def engine_graph(tiny_pack: tuple[Path, Path]) -> Any:
    """(replacement model, unpruned graph of PROMPT) straight from the engine, made once: the
    graph's own numbers to check runs against, and the document the `graph` fixture imports."""
    from inference.engine import ReplacementModel, attribute

    rm = ReplacementModel.load(*tiny_pack)
    return rm, attribute(PROMPT, rm)


@pytest.fixture
def graph(alice: User, tiny: LanguageModel, engine_graph: Any) -> Graph:
    """Alice's public graph of PROMPT, as the engine made it (tests/jobs covers the job path
    that generates and stores graphs)."""
    from inference.engine import graph_to_json, prune

    _, unpruned = engine_graph
    document = graph_to_json(unpruned, prune(unpruned), slug="four-words", scan=SLUG)
    return services.import_graph_bytes(
        json.dumps(document).encode(),
        model_slug=SLUG,
        transcoder_set_slug="plt",
        slug="four-words",
        owner=alice,
        visibility="public",
    )
