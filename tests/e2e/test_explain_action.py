"""The explorer's "Explain this graph's features" in a real browser: it queues an explain job for
the graph, follows it to the end, and the features' new explanations arrive in the page."""

from __future__ import annotations

from typing import Any

import pytest

from features.models import Explanation, Feature, refresh_explanations
from graphs.models import GraphNode
from jobs import explain
from jobs.models import Job
from tests.e2e.conftest import import_synthetic, log_in, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_explaining_a_graphs_features_from_the_explorer(
    page: Any, live_server: Any, alice: Any
) -> None:
    graph = import_synthetic(1000, 12000, slug="explain-me")
    # Only what the job writes: every feature keeps the one example the fixture gave it.
    Explanation.objects.all().delete()
    refresh_explanations(list(Feature.objects.values_list("pk", flat=True)))
    node = GraphNode.objects.filter(graph=graph).order_by("node_id").first()
    assert node is not None
    base = live_server.url
    log_in(page, base, "alice")
    page.goto(f"{base}/graphs/{graph.model.slug}/{graph.slug}")
    page.wait_for_selector("#explorer[data-ready='1']", timeout=20_000)

    page.get_by_role("button", name="Explain this graph's features").click()
    page.locator(".explain-status", has_text="Queued").wait_for()
    job = Job.objects.get(kind="explain")
    assert job.params["graph"] == graph.slug
    assert [node.layer, node.feature_index] in job.params["features"]
    # No worker in this test: run the job here, as a default-queue worker would.
    assert explain.run(str(job.id), "test-worker") == "succeeded"

    page.locator(".explain-status", has_text="Done: ").wait_for(timeout=20_000)
    index = page.evaluate(f"window.__explorer.store.get().graph.index.get({node.node_id!r})")
    # wait_until, not page.wait_for_function: the latter polls by eval, which the site's CSP
    # refuses, so it failed whenever the explanations were not there at its first look.
    wait_until(
        page, f"window.__explorer.store.get().explanations.get({index})?.startsWith('fires on')"
    )
    assert page.errors == []
