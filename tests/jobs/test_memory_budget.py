"""The worker plans an attribution's memory before its backward passes (inference/tasks.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import override_settings

from features.models import LanguageModel
from jobs.models import Job
from tests.jobs.conftest import register_model

PROMPT = "w5 w6 w7 w8"


@pytest.fixture
def tiny(tiny_pack: tuple[Path, Path], db: None) -> LanguageModel:
    return register_model("tiny-memory", tiny_pack)


def _need(
    model: LanguageModel,
    batch_size: int,
    max_feature_nodes: int,
    hold: bool,
    ranking_entries: int | None = None,
) -> int:
    """The planner's device total for PROMPT in one layout, weights included."""
    from inference.engine import memory_plan
    from inference.model_cache import load_model

    assert model.default_transcoder_set is not None
    rm = load_model(model, model.default_transcoder_set)
    active = memory_plan.measure(rm, rm.tokenize(PROMPT))
    assert active.total > max_feature_nodes
    return memory_plan.estimate(
        memory_plan.Shapes.of(rm),
        active,
        batch_size=batch_size,
        max_feature_nodes=max_feature_nodes,
        n_logits=10,
        layout=memory_plan.Layout(hold_decoder_blocks=hold, ranking_entries=ranking_entries),
    ).device_total


def _device_total(model: LanguageModel, batch_size: int, max_feature_nodes: int) -> int:
    """What the planner predicts for PROMPT with these settings, weights included, in the
    layout that needs least (a CPU worker holds the decoder blocks or builds them per batch,
    with the dense ranking or the sparse one at its smallest, one entry a row)."""
    return min(
        _need(model, batch_size, max_feature_nodes, hold, entries)
        for hold in (True, False)
        for entries in (None, 1)
    )


def _job(owner: User, model: LanguageModel, **params: Any) -> Job:
    return Job.objects.create(
        owner=owner, model=model, transcoder_set=model.default_transcoder_set, queue="q",
        params={"prompt": PROMPT, "max_feature_nodes": 6, **params},
    )  # fmt: skip


def _spy_attribute(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Each `engine.attribute` call's keyword arguments, the real attribute still running."""
    from inference import engine

    calls: list[dict[str, Any]] = []
    real = engine.attribute

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "attribute", spy)
    return calls


@pytest.mark.django_db
def test_a_run_too_big_for_the_worker_fails_before_attributing_and_names_the_knob(
    alice: User, tiny: LanguageModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    from inference import engine, tasks
    from inference.engine import memory_plan

    def never(*_: Any, **__: Any) -> None:
        raise AssertionError("attribute() ran although the run cannot fit")

    monkeypatch.setattr(engine, "attribute", never)
    budget = _device_total(tiny, batch_size=1, max_feature_nodes=2)
    job = _job(alice, tiny)
    with override_settings(JOBS_WORKER_MEMORY_GB=budget / 1e9):
        assert tasks.run_job(str(job.pk), "gpu@w") == "failed"
    job.refresh_from_db()
    assert job.status == "failed"
    assert job.error.startswith("this prompt needs about ")
    has = memory_plan.readable_bytes(budget)
    assert f"this worker has {has}: set max_feature_nodes ≤ 2" in job.error


@pytest.mark.django_db
def test_a_given_batch_size_that_cannot_fit_is_named_in_the_refusal(
    alice: User, tiny: LanguageModel
) -> None:
    from inference import tasks

    budget = _device_total(tiny, batch_size=3, max_feature_nodes=6)
    job = _job(alice, tiny, batch_size=50)
    with override_settings(JOBS_WORKER_MEMORY_GB=budget / 1e9):
        assert tasks.run_job(str(job.pk), "gpu@w") == "failed"
    job.refresh_from_db()
    assert "batch size ≤ 3" in job.error


@pytest.mark.django_db
def test_the_worker_attributes_with_the_largest_batch_that_fits(
    alice: User, tiny: LanguageModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    from inference import tasks

    calls = _spy_attribute(monkeypatch)
    budget = min(_need(tiny, 3, 6, hold) for hold in (True, False))
    job = _job(alice, tiny)
    with override_settings(JOBS_WORKER_MEMORY_GB=budget / 1e9):
        assert tasks.run_job(str(job.pk), "gpu@w") == "succeeded"
    assert [call["batch_size"] for call in calls] == [3]
    job.refresh_from_db()
    assert job.status == "succeeded"


@pytest.mark.django_db
def test_tokenize_answers_with_the_planners_estimate_for_the_job_defaults(
    tiny: LanguageModel,
) -> None:
    from inference import tasks

    memory = tasks.tokenize_prompt(tiny.pk, PROMPT)["memory"]
    assert memory["refusal"] == ""
    assert memory["batch_size"] == 256
    assert memory["ranking_entries"] is None  # the dense ranking fits
    assert 0 < memory["bytes"] < memory["budget_bytes"]
    with override_settings(JOBS_WORKER_MEMORY_GB=1e-9):  # one byte: not even the weights fit
        refused = tasks.tokenize_prompt(tiny.pk, PROMPT)["memory"]
    assert refused["bytes"] is None
    assert refused["refusal"].startswith("this prompt needs about ")


@pytest.mark.django_db
def test_the_worker_builds_decoder_blocks_per_batch_when_holding_them_does_not_fit(
    alice: User, tiny: LanguageModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    from inference import tasks

    calls = _spy_attribute(monkeypatch)
    budget = _need(tiny, batch_size=4, max_feature_nodes=6, hold=False)
    assert _need(tiny, batch_size=1, max_feature_nodes=6, hold=True) > budget
    job = _job(alice, tiny, batch_size=4)
    with override_settings(JOBS_WORKER_MEMORY_GB=budget / 1e9):
        assert tasks.run_job(str(job.pk), "gpu@w") == "succeeded"
    layouts = [(call["hold_decoder_blocks"], call["offload_rows"]) for call in calls]
    assert layouts == [(False, False)]  # a CPU worker never offloads: its host is its device


@pytest.mark.django_db
def test_the_worker_ranks_sparsely_when_no_dense_layout_fits(
    alice: User, tiny: LanguageModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    from inference import tasks

    calls = _spy_attribute(monkeypatch)
    dense = min(_need(tiny, 1, 6, hold) for hold in (True, False))
    budget = min(_need(tiny, 1, 6, hold, 2) for hold in (True, False))
    assert budget < dense  # the tiny model's ranking buffer outweighs two entries a row
    job = _job(alice, tiny, batch_size=1)
    with override_settings(JOBS_WORKER_MEMORY_GB=budget / 1e9):
        assert tasks.run_job(str(job.pk), "gpu@w") == "succeeded"
    entries = [call["ranking_entries"] for call in calls]
    assert len(entries) == 1
    assert entries[0] is not None
    assert entries[0] >= 2
    job.refresh_from_db()
    assert job.status == "succeeded"
