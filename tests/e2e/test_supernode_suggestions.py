"""Suggested supernodes in the explorer, in a real browser: Suggest, the preview on the link graph,
accept and reject (one, then all), Undo (button and Ctrl+Z), save, reload, and the endpoint's
errors on the page; on a phone-sized touch screen too. Screenshots go to test-output/e2e/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.contrib.auth.models import User

from graphs.models import Graph, Subgraph
from tests.e2e.conftest import import_synthetic, log_in, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

GROUPS = """() => { const s = window.__explorer.store.get(); const id = i => s.graph.nodes[i].id;
  return { groups: s.groups.map(g => [g.name, ...g.members.map(id)]), pinned: s.pinned.map(id) }; }"""
ROWS = """() => [...document.querySelectorAll('.suggest-row')].map(r => ({
  index: r.dataset.index, name: r.querySelector('.suggest-name').textContent,
  members: r.title.split(', ') }))"""
PAINTED = """() => { const c = document.querySelector('.suggest-overlay');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }"""


@pytest.fixture
def graph(alice: User) -> Graph:
    g = import_synthetic(300, 2500, slug="suggest-graph")
    g.owner = alice
    g.save(update_fields=["owner"])
    return g


def open_explorer(page: Any, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("#explorer[data-ready='1']", timeout=20_000)


def act(row: dict[str, Any], action: str) -> str:
    """The selector of `row`'s Accept or Reject button."""
    return f".suggest-row[data-index='{row['index']}'] button[name=suggest_{action}]"


def suggest(page: Any) -> list[dict[str, Any]]:
    before = page.evaluate("document.querySelector('.suggest-box')?.dataset.ready ?? ''")
    page.click("button[name=suggest]")
    wait_until(
        page,
        f"(document.querySelector('.suggest-box')?.dataset.ready ?? '') !== '{before}'",
    )
    rows: list[dict[str, Any]] = page.evaluate(ROWS)
    return rows


def test_suggest_preview_accept_reject_undo_save_and_reload(
    page: Any, live_server: Any, graph: Graph, output_dir: Path
) -> None:
    base = live_server.url
    log_in(page, base, "alice")
    open_explorer(page, f"{base}/graphs/synthetic/{graph.slug}")
    assert page.locator(".suggest-overlay").count() == 0
    rows = suggest(page)
    assert len(rows) >= 2, rows
    assert "features in view" in page.inner_text(".suggest-status")
    # The preview: each pending group outlined on the link graph.
    assert page.evaluate(PAINTED) > 100
    page.hover(".suggest-row >> nth=0")
    page.screenshot(path=str(output_dir / "suggest-preview.png"), full_page=True)

    first, second = rows[0], rows[1]
    page.click(act(first, "accept"))
    accepted = [first["name"], *first["members"]]
    assert page.evaluate(GROUPS)["groups"] == [accepted]
    assert "supernodes=" in page.url
    page.click(act(second, "reject"))
    assert page.evaluate(ROWS) == rows[2:]
    assert page.evaluate(GROUPS)["groups"] == [accepted]
    assert "1 accepted, 1 rejected" in page.inner_text(".suggest-status")

    # Undo the reject (button), then the accept (Ctrl+Z): no supernode, no pin, both pending.
    page.click("button[name=suggest_undo]")
    assert page.evaluate(ROWS) == rows[1:]
    page.locator(".suggest-status").click()  # focus off the buttons, as a keyboard user might be
    page.keyboard.press("Control+z")
    assert page.evaluate(GROUPS) == {"groups": [], "pinned": []}
    assert page.evaluate(ROWS) == rows

    # Decide again, by keyboard this time, and save.
    page.focus(act(first, "accept"))
    page.keyboard.press("Enter")
    assert page.evaluate(GROUPS)["groups"] == [accepted]
    # The focus moved to the row that took its place: tab to its Reject and press it.
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.getAttribute('aria-label')") == (
        f"Reject suggestion 2, “{second['name']}”"
    )
    page.keyboard.press("Enter")
    page.screenshot(path=str(output_dir / "suggest-accepted.png"), full_page=True)
    page.click("#save-subgraph")
    page.fill("#sg-title", "suggested")
    page.click("#save-dialog button[value=new]")
    page.wait_for_selector("#share-dialog[open]")
    link = page.input_value("#share-link")
    page.click("#share-dialog [data-close]")
    saved = Subgraph.objects.get(title="suggested")
    assert saved.supernodes == [accepted]

    # The saved link reopens the accepted supernode, in the subgraph too.
    open_explorer(page, link)
    state = page.evaluate(GROUPS)
    assert state["groups"] == [accepted]
    assert page.locator(".sg-unit .sg-count").first.text_content() == str(len(first["members"]))
    # A new review leaves out what is grouped; accept all of it, then undo to the saved state.
    rows = suggest(page)
    assert rows
    assert not any(set(r["members"]) & set(first["members"]) for r in rows)
    page.click("button[name=suggest_accept_all]")
    assert len(page.evaluate(GROUPS)["groups"]) == 1 + len(rows)
    page.click("button[name=suggest_undo]")
    assert page.evaluate(GROUPS) == state
    page.screenshot(path=str(output_dir / "suggest-reloaded.png"), full_page=True)
    assert page.errors == []


def test_with_pins_only_the_pins_not_yet_grouped_are_asked_about(
    page: Any, live_server: Any, graph: Graph
) -> None:
    from graphs.models import GraphNode

    ids = list(
        GraphNode.objects.filter(graph=graph)
        .order_by("influence")
        .values_list("node_id", flat=True)
    )[:6]
    grouped = json.dumps([["mine", ids[0], ids[1]]])
    sent: list[Any] = []
    page.on(
        "request",
        lambda r: sent.append(r.post_data_json) if "supernode-suggestions" in r.url else None,
    )
    open_explorer(
        page,
        f"{live_server.url}/graphs/synthetic/{graph.slug}?pinnedIds={','.join(ids)}"
        f"&supernodes={quote(grouped)}",
    )
    suggest(page)
    assert sent == [{"node_ids": ids[2:], "threshold": 0.2}]
    assert "the 4 pinned features" in page.inner_text(".suggest-status")


def test_the_endpoints_errors_are_shown_and_nothing_changes(
    page: Any, live_server: Any, graph: Graph
) -> None:
    open_explorer(page, f"{live_server.url}/graphs/synthetic/{graph.slug}")
    rows = suggest(page)
    page.fill("input[name=suggest_threshold]", "1.5")
    page.click("button[name=suggest]")
    status = page.locator(".suggest-status[role=alert]")
    status.wait_for()
    assert "threshold" in status.inner_text()
    # The review on the page stays as it was, and no supernode was made.
    assert page.evaluate(ROWS) == rows
    assert page.evaluate(GROUPS) == {"groups": [], "pinned": []}
    # The endpoint gone (the graph deleted meanwhile): its 404 is said on the page.
    Graph.objects.filter(pk=graph.pk).delete()
    page.fill("input[name=suggest_threshold]", "0.2")
    page.click("button[name=suggest]")
    wait_until(
        page,
        "(document.querySelector('.suggest-status[role=alert]')?.textContent ?? 'threshold')"
        ".includes('threshold') === false",
    )
    assert "not found" in page.inner_text(".suggest-status").lower()


def test_on_a_phone_the_review_fits_and_works_by_touch(
    browser: Any, live_server: Any, graph: Graph, output_dir: Path
) -> None:
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True
    )
    phone = context.new_page()
    try:
        open_explorer(phone, f"{live_server.url}/graphs/synthetic/{graph.slug}")
        phone.tap("button[name=suggest]")
        wait_until(phone, "!!document.querySelector('.suggest-box')?.dataset.ready")
        rows = phone.evaluate(ROWS)
        assert rows
        box = phone.locator(".suggest-row button[name=suggest_accept]").first.bounding_box()
        assert box["height"] >= 30
        assert box["x"] + box["width"] <= 390
        phone.locator(".suggest-box").scroll_into_view_if_needed()
        phone.screenshot(path=str(output_dir / "suggest-phone.png"), full_page=True)
        phone.locator(".suggest-row button[name=suggest_accept]").first.tap()
        assert phone.evaluate(GROUPS)["groups"] == [[rows[0]["name"], *rows[0]["members"]]]
        phone.tap("button[name=suggest_reject_all]")
        assert phone.locator(".suggest-row").count() == 0
        assert f"1 accepted, {len(rows) - 1} rejected. All decided." in phone.inner_text(
            ".suggest-status"
        )
        assert phone.evaluate(GROUPS)["groups"] == [[rows[0]["name"], *rows[0]["members"]]]
        assert phone.evaluate("() => document.documentElement.scrollWidth") <= 390
    finally:
        context.close()
