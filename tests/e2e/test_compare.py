"""The explorer's comparison in a real browser: "Compare with…" another graph of the same set,
the overlay and the table of what changed, side by side, and the comparison in the URL."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import import_synthetic, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

READY = "document.querySelector('.compare-panel')?.dataset.ready === '1'"


@pytest.fixture
def base(live_server: Any) -> str:
    import_synthetic(300, 2000, slug="graph-a", seed=0, with_dashboards=False)
    import_synthetic(300, 2000, slug="graph-b", seed=1, with_dashboards=False)
    return f"{live_server.url}/graphs/synthetic/graph-a"


def test_comparing_from_the_picker_colours_the_graph_and_lists_the_changes(
    page: Any, base: str
) -> None:
    page.goto(base)
    page.wait_for_selector("#explorer[data-ready='1']", timeout=20_000)
    wait_until(page, "document.querySelectorAll('select[name=compare] option').length === 2")
    page.select_option("select[name=compare]", "synthetic/graph-b")
    wait_until(page, READY)
    assert "compare=synthetic%2Fgraph-b" in page.url
    rows = page.locator(".compare-table tr.compare-row")
    assert rows.count() == 50
    first = rows.first.locator("td").nth(3).inner_text()
    last = rows.last.locator("td").nth(3).inner_text()
    assert abs(float(first)) >= abs(float(last))
    assert "only in B" in page.locator(".compare-summary").inner_text()
    # The overlay paints over the link graph: some of its pixels are not transparent.
    painted = page.evaluate(
        """() => { const c = document.querySelector('.compare-overlay');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }"""
    )
    assert painted > 100
    # Hovering a row of a node this graph has highlights it in the graph.
    page.locator(".compare-table tr.compare-row[tabindex]").first.hover()
    assert page.evaluate("window.__explorer.store.get().hovered") >= 0


def test_side_by_side_and_a_copied_link_reopen_the_comparison(page: Any, base: str) -> None:
    page.goto(f"{base}?compare=synthetic/graph-b")
    page.wait_for_selector("#explorer[data-ready='1']", timeout=20_000)
    wait_until(page, READY)
    assert page.input_value("select[name=compare]") == "synthetic/graph-b"
    page.check("input[name=side_by_side]")
    wait_until(page, "!!document.querySelector('iframe.compare-frame')")
    assert "compareView=side" in page.url
    frame = page.frame_locator("iframe.compare-frame")
    # B's own explorer, compared back with A.
    frame.locator(".compare-panel[data-ready='1']").wait_for(timeout=30_000)
    assert frame.locator(".compare-panel").get_attribute("data-compare") == "synthetic/graph-a"
    copied = page.url
    page.goto(copied)
    wait_until(page, READY)
    wait_until(page, "!!document.querySelector('iframe.compare-frame')")
    page.click("text=Stop comparing")
    wait_until(page, "!location.search.includes('compare')")
    assert page.locator("iframe.compare-frame").count() == 0


def test_graphs_of_another_set_are_not_offered(page: Any, base: str) -> None:
    from features.models import LanguageModel, TranscoderSet
    from graphs.models import Graph

    other = TranscoderSet.objects.create(
        model=LanguageModel.objects.get(slug="synthetic"), slug="other", features_per_layer=16384
    )
    Graph.objects.filter(slug="graph-b").update(transcoder_set=other)
    page.goto(base)
    page.wait_for_selector("#explorer[data-ready='1']", timeout=20_000)
    wait_until(page, "document.querySelector('select[name=compare]')?.dataset.loaded === '1'")
    values = page.eval_on_selector_all("select[name=compare] option", "os => os.map(o => o.value)")
    assert values == [""]
