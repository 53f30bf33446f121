"""The explorer's Test panel in a browser, against a real worker (tiny random Llama on CPU):
pinned features and a supernode become rows, an intervention draws before/after bars, a steered
generation shows both continuations with probabilities on hover, and the runs are listed and can
be re-run. Django's live server is WSGI only, so the panel follows jobs by polling (its fallback);
tests/jobs/test_worker.py covers the websocket path of the same jobs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User

from graphs.models import Graph
from steering.models import SteeringRun
from tests.e2e.conftest import log_in, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.services, pytest.mark.django_db(transaction=True)]

SLUG = "tiny-test-panel"
PROMPT = "w5 w6 w7 w8 w9"
# The first job waits for the worker to import torch and load the model.
FIRST_RUN_MS = 240_000


@pytest.fixture(scope="module")
def worker(django_db_setup: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from tests.jobs.conftest import start_worker

    worker = start_worker([f"gpu.{SLUG}"], tmp_path_factory.mktemp("panel-worker"))
    yield worker
    worker.stop()


@pytest.fixture
def graph(alice: User, tmp_path_factory: pytest.TempPathFactory) -> Graph:
    """Alice's public graph of PROMPT, made by the engine and imported as a generated one."""
    from graphs import services
    from inference.engine import ReplacementModel, attribute, graph_to_json, prune
    from tests.engine.builders import save_model, save_plt
    from tests.jobs.conftest import register_model

    folder = tmp_path_factory.mktemp("panel-pack")
    pack = (save_model("llama", folder / "model"), save_plt(folder / "transcoders"))
    register_model(SLUG, pack)
    engine_graph = attribute(PROMPT, ReplacementModel.load(*pack))
    document = graph_to_json(engine_graph, prune(engine_graph), slug="five-words", scan=SLUG)
    return services.import_graph_bytes(
        json.dumps(document).encode(),
        model_slug=SLUG,
        slug="five-words",
        owner=alice,
        visibility="public",
    )


def strongest_features(graph: Graph, n: int) -> list[str]:
    """Feature node ids at positions after the first, most influential first."""
    nodes = graph.feature_nodes.filter(position__gte=1).order_by("influence")
    return [node.node_id for node in nodes[:n]]


def test_the_test_panel_runs_an_intervention_and_a_steered_generation(
    page: Any,
    live_server: Any,
    alice: User,
    graph: Graph,
    worker: Any,
    output_dir: Path,
) -> None:
    base = live_server.url
    log_in(page, base, "alice")
    first, second, third = strongest_features(graph, 3)
    # Two features grouped as a supernode, one pinned alone (Neuronpedia's URL parameters).
    supernodes = json.dumps([["pair", first, second]])
    page.goto(
        f"{base}/graphs/{SLUG}/{graph.slug}?pinnedIds={first},{second},{third}"
        f"&supernodes={supernodes}"
    )
    page.wait_for_selector("#explorer[data-ready='1']")
    rows = page.locator(".test-row")
    assert rows.count() == 2
    assert rows.nth(0).locator(".test-row-name").inner_text() == "pair"

    # Scale the pair up, ablate the single feature; constrained mode.
    rows.nth(0).locator("select[name=action]").select_option("scale")
    rows.nth(0).locator("input[name=value]").fill("4")
    rows.nth(0).locator("input[name=value]").dispatch_event("change")
    page.click(".test-panel button[name=intervene]")
    page.wait_for_selector(".test-result .test-bar-row", timeout=FIRST_RUN_MS)
    assert page.locator(".test-status").inner_text() == "Done."
    assert page.locator(".test-bar-row").count() >= 2
    run = SteeringRun.objects.get(kind="intervene")
    assert run.owner == alice
    assert run.graph == graph
    assert run.interventions[0]["group"] == "pair"
    assert run.interventions[0]["action"] == "scale"
    assert run.interventions[0]["value"] == 4.0
    assert run.interventions[1]["action"] == "ablate"
    page.screenshot(path=str(output_dir / "test-panel-intervention.png"), full_page=True)

    # Steer: both continuations, tokens with their probabilities in a tooltip.
    page.fill(".test-panel input[name=n_tokens]", "6")
    page.fill(".test-panel input[name=seed]", "3")
    page.click(".test-panel button[name=steer]")
    page.wait_for_selector(".test-continuations", timeout=60_000)
    columns = page.locator(".test-continuation")
    assert [columns.nth(i).locator("h4").inner_text() for i in range(2)] == ["Default", "Steered"]
    tokens = columns.nth(1).locator(".test-token")
    assert tokens.count() == 6
    assert "top next tokens" in (tokens.nth(0).get_attribute("title") or "")
    page.screenshot(path=str(output_dir / "test-panel-steering.png"), full_page=True)

    # Both runs are in the history; re-running the steered one reproduces it (same seed).
    history = page.locator(".test-history li")
    assert history.count() == 2
    history.nth(0).locator("button", has_text="Re-run").click()
    wait_until(page, "document.querySelectorAll('.test-history li').length === 3")
    steered = SteeringRun.objects.filter(kind="steer").order_by("created_at")
    assert [r.result is not None for r in steered] == [True, True]
    assert steered[1].rerun_of == steered[0]
    assert steered[1].result == steered[0].result
    assert page.errors == []


def test_a_visitor_sees_the_runs_but_must_log_in_to_run(
    page: Any, live_server: Any, alice: User, graph: Graph
) -> None:
    SteeringRun.objects.create(
        kind="intervene", owner=alice, model=graph.model, graph=graph, prompt=PROMPT,
        interventions=[], settings={"mode": "constrained"}, visibility="public",
        result={"input_tokens": [], "activations": [], "logits": [
            {"token": 9, "text": "w9", "clean_probability": 0.2, "probability": 0.5,
             "clean_logit": 0.0, "logit": 1.0}]},
    )  # fmt: skip
    page.goto(f"{live_server.url}/graphs/{SLUG}/{graph.slug}")
    page.wait_for_selector(".test-history li button.link-button")
    assert page.locator(".test-panel button[name=intervene]").is_disabled()
    assert "to run interventions" in page.locator(".test-panel").inner_text()
    page.locator(".test-history li button.link-button").click()
    assert page.locator(".test-bar-row .test-bar-numbers").inner_text() == "20.0% → 50.0%"
    assert page.errors == []
