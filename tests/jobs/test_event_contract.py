"""A job's websocket messages are the ones frontend/src/api/job-events.yaml promises: the pages are
typed from that file (job-events.d.ts), so an event that gains, loses or retypes a field must
change the contract too. The lifecycle runs for real on the test database (claim, progress, fail,
cancel, reap, a stored graph, a stored steering result) and every event it sends is checked
against the contract, as is the ``state`` message a connecting socket gets first."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.contrib.auth.models import User
from django.utils import timezone
from jsonschema import Draft202012Validator

from features.models import LanguageModel, TranscoderSet
from jobs import dispatch, events, services
from jobs.models import Job
from steering import services as steering_services
from steering.models import SteeringRun
from tests.e2e.synthetic_graph import synthetic_graph

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = ROOT / "frontend" / "src" / "api" / "job-events.yaml"
N_LAYERS = 2

pytestmark = pytest.mark.django_db


def contract() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(CONTRACT.read_text())
    return document


def problems(event: dict[str, Any]) -> list[str]:
    """What is wrong with ``event`` by the contract's schema for its type (its $refs resolved
    against the contract document); a type the contract does not name is a problem too."""
    document = contract()
    mapping = document["components"]["schemas"]["JobEvent"]["discriminator"]["mapping"]
    if event.get("type") not in mapping:
        return [f"the contract has no event of type {event.get('type')!r}"]
    schema = {"$ref": mapping[event["type"]], "components": document["components"]}
    Draft202012Validator.check_schema(schema)
    return [error.message for error in Draft202012Validator(schema).iter_errors(event)]


def event_types() -> set[str]:
    mapping = contract()["components"]["schemas"]["JobEvent"]["discriminator"]["mapping"]
    return set(mapping)


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every event handed to the websocket sender (what the consumer forwards unchanged); the
    Celery dispatch of re-queued jobs is recorded too, not sent."""
    messages: list[dict[str, Any]] = []
    monkeypatch.setattr(events, "send", lambda group, event: messages.append(event))
    monkeypatch.setattr(dispatch, "send", lambda job: None)
    return messages


@pytest.fixture
def model(db: None) -> LanguageModel:
    lm = LanguageModel.objects.create(
        slug="contract", display_name="Contract", n_layers=N_LAYERS, d_model=8, vocab_size=100
    )
    lm.default_transcoder_set = TranscoderSet.objects.create(
        model=lm, slug="plt", features_per_layer=1000
    )
    lm.save(update_fields=["default_transcoder_set"])
    return lm


def queued(owner: User, model: LanguageModel, kind: str = Job.Kind.ATTRIBUTION) -> Job:
    return Job.objects.create(
        owner=owner,
        model=model,
        transcoder_set=model.default_transcoder_set,
        kind=kind,
        queue=dispatch.queue_for(model),
        params={"prompt": "The cat", "visibility": "private"},
    )


def run_lifecycle(alice: User, model: LanguageModel) -> list[Job]:
    """One job of each ending, with a second job waiting behind the first on its queue."""
    stored, failed, cancelled, reaped = (queued(alice, model) for _ in range(4))
    claimed = services.claim(str(stored.pk), "gpu0@a")  # running, and the others move up
    assert claimed is not None
    with services.Run(claimed) as run:
        run.progress("features", 0.5)
        graph = run.complete_attribution(synthetic_graph(40, 80, n_layers=N_LAYERS, n_pos=4))
        assert graph is not None
    claimed = services.claim(str(failed.pk), "gpu0@a")
    assert claimed is not None
    assert services.Run(claimed).fail("out of memory")
    assert services.cancel(cancelled)
    claimed = services.claim(str(reaped.pk), "gpu0@a")
    assert claimed is not None
    Job.objects.filter(pk=reaped.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    assert services.reap_job(Job.objects.get(pk=reaped.pk)) == "requeued"

    steered = queued(alice, model, kind=Job.Kind.INTERVENE)
    SteeringRun.objects.create(
        kind=SteeringRun.Kind.INTERVENE, owner=alice, model=model, prompt="The cat", job=steered
    )
    claimed = services.claim(str(steered.pk), "gpu0@a")
    assert claimed is not None
    assert steering_services.complete(services.Run(claimed), {"logits": [], "activations": []})
    return [stored, failed, cancelled, reaped, steered]


def test_every_event_the_lifecycle_sends_is_one_the_contract_describes(
    alice: User, model: LanguageModel, sent: list[dict[str, Any]]
) -> None:
    run_lifecycle(alice, model)
    for event in sent:
        assert not problems(event), f"{event} breaks frontend/src/api/job-events.yaml"
    assert {event["type"] for event in sent} == event_types() - {"state"}
    done = [event for event in sent if event["type"] == "done"]
    assert {key for event in done for key in event if key in ("graph", "run")} == {"graph", "run"}


def test_the_state_a_connecting_socket_gets_first_is_the_contracts(
    alice: User, model: LanguageModel, sent: list[dict[str, Any]]
) -> None:
    jobs = run_lifecycle(alice, model)
    waiting = queued(alice, model)
    for job in [*jobs, waiting]:
        state = services.snapshot(Job.objects.get(pk=job.pk))
        assert not problems(state), f"{state} breaks frontend/src/api/job-events.yaml"
    assert services.snapshot(waiting)["position"] == 2  # behind the re-queued job


def test_the_contract_names_every_event_type_the_code_sends() -> None:
    """A new ``{"type": ...}`` sent from jobs/ or steering/ needs its schema in the contract."""
    sources = [*(ROOT / "jobs").glob("*.py"), *(ROOT / "steering").glob("*.py")]
    # Only dicts handed to an emit call: serializers also hold JSON-schema dicts ({"type": ...}).
    emitted = re.compile(r'emit\((?:[\w.]+, )?\{"type": "(\w+)"')
    named = {match for path in sources for match in emitted.findall(path.read_text())}
    assert named, "found no emitted events: the pattern no longer matches how jobs/ sends them"
    assert named <= event_types()
