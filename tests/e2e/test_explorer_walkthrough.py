"""The explorer after the researcher's walkthrough (issue 18), in a real browser: pin and group
without shortcuts, a phone-sized screen, links to a missing or a shared subgraph, the graph's own
visibility on its page and the save dialog's warning, the feature panel's layout, and labels
that fit the canvas. Each test leaves a screenshot under test-output/e2e/."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from core.visibility import Visibility
from graphs.models import Graph, Subgraph
from tests.e2e.conftest import import_synthetic, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

BUSY_FEATURE = """() => {
  const s = window.__explorer.store.get(); const g = s.graph; let best = -1, most = -1;
  for (let i = 0; i < g.n; i++) {
    if (g.kind[i] !== 1 || s.view.visible[i] !== 1) continue;
    const n = g.inStart[i + 1] - g.inStart[i] + g.outStart[i + 1] - g.outStart[i];
    if (n > most) { most = n; best = i; }
  }
  return best;
}"""
STATE = """() => {
  const s = window.__explorer.store.get(); const id = i => s.graph.nodes[i].id;
  return { pinned: s.pinned.map(id), grouping: s.grouping.map(id),
           groups: s.groups.map(g => [g.name, ...g.members.map(id)]) };
}"""


def sign_in(page: Any, base: str, user: User) -> None:
    """The browser gets a session of `user` (the login form has its own tests)."""
    client = Client()
    client.force_login(user)
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": base}]
    )


def open_explorer(page: Any, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("#explorer[data-ready='1']", timeout=20_000)


def select(page: Any, node: int) -> None:
    page.evaluate("i => window.__explorer.store.set({ selected: i })", node)


@pytest.fixture
def graph(alice: User) -> Graph:
    g = import_synthetic(300, 2500, slug="walk-graph")
    g.owner = alice
    g.title = "Texas capitals, walked through"
    g.scores = {"replacement_score": 0.8123, "completeness_score": 0.9345}
    g.save(update_fields=["owner", "title", "scores"])
    return g


@pytest.fixture
def url(live_server: Any, graph: Graph) -> str:
    return f"{live_server.url}/graphs/{graph.model.slug}/{graph.slug}"


@pytest.fixture
def phone(browser: Any) -> Iterator[Any]:
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True
    )
    page = context.new_page()
    yield page
    context.close()


def test_the_heading_is_the_graph_title_and_the_bar_shows_its_scores(
    page: Any, url: str, output_dir: Path
) -> None:
    open_explorer(page, url)
    assert page.inner_text(".explorer-title") == "Texas capitals, walked through"
    scores = page.inner_text("#graph-bar")
    assert "replacement 0.812" in scores
    assert "completeness 0.935" in scores
    page.screenshot(path=str(output_dir / "walk-title-scores.png"))


def test_the_node_panel_and_connection_rows_pin_pick_and_group_without_shortcuts(
    page: Any, url: str, output_dir: Path
) -> None:
    open_explorer(page, url)
    node = page.evaluate(BUSY_FEATURE)
    select(page, node)
    panel = page.locator(".feature-panel")
    panel.get_by_role("button", name="Pin to subgraph").click()
    node_id = page.evaluate("i => window.__explorer.store.get().graph.nodes[i].id", node)
    assert page.evaluate(STATE)["pinned"] == [node_id]
    assert panel.get_by_role("button", name="Unpin").get_attribute("aria-pressed") == "true"
    layer, feature = node_id.split("_")[:2]
    link = panel.get_by_role("link", name="Feature page")
    assert link.get_attribute("href") == f"/features/synthetic/clt/{layer}/{feature}"

    # Pick this node and two of its connections for a group, from the buttons, then group them.
    panel.get_by_role("button", name="Pick for a group").click()
    rows = page.locator(".connections .vrow[data-node]")
    for k in range(2):
        rows.nth(k).get_by_role("button", name="Group").click()
    state = page.evaluate(STATE)
    assert len(state["grouping"]) == 3
    assert set(state["grouping"]) <= set(state["pinned"])
    assert page.evaluate("() => window.__explorer.store.get().selected") == node, (
        "a row's button must not select the row"
    )
    page.mouse.move(1, 1)  # off the rows: the panel shows the selected node again, not the hovered
    page.screenshot(path=str(output_dir / "walk-touch-buttons.png"))
    panel.get_by_role("button", name="Group the 3 picked").click()
    groups = page.evaluate(STATE)["groups"]
    assert len(groups) == 1
    assert len(groups[0]) == 4


def test_on_a_phone_connection_names_are_readable_and_nothing_overflows(
    phone: Any, url: str, output_dir: Path
) -> None:
    open_explorer(phone, url)
    select(phone, phone.evaluate(BUSY_FEATURE))
    phone.wait_for_selector(".connections .vrow[data-node]")
    widths = phone.eval_on_selector_all(
        ".connections .vrow[data-node] .vrow-label",
        "els => els.slice(0, 6).map(e => e.getBoundingClientRect().width)",
    )
    assert len(widths) == 6
    assert min(widths) > 120, widths
    assert phone.evaluate("() => document.documentElement.scrollWidth") <= 390
    phone.locator(".connections").scroll_into_view_if_needed()
    phone.screenshot(path=str(output_dir / "walk-phone.png"), full_page=True)


def test_a_link_to_a_missing_subgraph_says_so_and_asks_once(
    page: Any, url: str, output_dir: Path
) -> None:
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/api/v1/subgraphs/" in r.url else None)
    open_explorer(page, f"{url}?subgraph=madeUp123")
    wait_until(page, "document.querySelector('.test-history li') !== null")
    note = page.locator(".subgraph-missing")
    assert "could not be opened" in note.inner_text()
    assert "private, was deleted, or never existed" in note.inner_text()
    # Once for the subgraph; its runs are not asked for (there is none): the graph's are.
    assert asked == [f"{url.split('/graphs/')[0]}/api/v1/subgraphs/madeUp123"], asked
    assert page.inner_text(".test-history h4") == "Runs on this graph"
    page.screenshot(path=str(output_dir / "walk-missing-subgraph.png"))


def test_a_shared_subgraph_shows_its_title_and_notes_to_a_viewer(
    page: Any, url: str, graph: Graph, alice: User, bob: User, live_server: Any, output_dir: Path
) -> None:
    graph.visibility = Visibility.UNLISTED
    graph.save(update_fields=["visibility"])
    subgraph = Subgraph.objects.create(
        graph=graph,
        owner=alice,
        title="The capital circuit",
        notes="Texas → Austin goes through the state features.",
        pinned_ids=[],
        visibility=Visibility.UNLISTED,
    )
    sign_in(page, live_server.url, bob)
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/api/v1/subgraphs/" in r.url else None)
    open_explorer(page, f"{url}?subgraph={subgraph.share_slug}")
    banner = page.locator(".subgraph-banner")
    assert "The capital circuit" in banner.inner_text()
    assert "saved by alice" in banner.inner_text()
    assert "Texas → Austin goes through the state features." in banner.inner_text()
    details = [u for u in asked if u.endswith(f"/api/v1/subgraphs/{subgraph.share_slug}")]
    assert len(details) == 1, asked
    page.screenshot(path=str(output_dir / "walk-shared-subgraph.png"))


def test_saving_an_unlisted_subgraph_of_a_private_graph_warns_and_offers_to_share_the_graph(
    page: Any, url: str, graph: Graph, alice: User, live_server: Any, output_dir: Path
) -> None:
    graph.visibility = Visibility.PRIVATE
    graph.save(update_fields=["visibility"])
    sign_in(page, live_server.url, alice)
    open_explorer(page, url)
    page.click("#save-subgraph")
    dialog = page.locator("#save-dialog")
    warning = dialog.locator(".dialog-warning")
    assert not warning.is_visible()
    dialog.locator("select[name=visibility]").select_option("unlisted")
    assert warning.is_visible()
    assert "This graph is private" in warning.inner_text()
    page.screenshot(path=str(output_dir / "walk-save-warning.png"))
    warning.get_by_role("button", name="Make the graph unlisted").click()
    wait_until(page, "document.querySelector('#save-dialog .dialog-warning').hidden")
    graph.refresh_from_db()
    assert graph.visibility == Visibility.UNLISTED
    assert page.input_value("#graph-visibility") == "unlisted"
    assert "now unlisted" in page.inner_text(".graph-visibility-status")


def test_the_graph_page_changes_the_graph_visibility_and_says_so(
    page: Any, url: str, graph: Graph, alice: User, live_server: Any
) -> None:
    sign_in(page, live_server.url, alice)
    open_explorer(page, url)
    page.select_option("#graph-visibility", "public")
    wait_until(
        page, "document.querySelector('.graph-visibility-status').textContent.includes('public')"
    )
    graph.refresh_from_db()
    assert graph.visibility == Visibility.PUBLIC


def test_the_feature_panel_aligns_its_chips_and_wraps_snippets_between_words(
    page: Any, url: str, graph: Graph, output_dir: Path
) -> None:
    from features.models import ActivationExample, Feature

    open_explorer(page, url)
    node = page.evaluate(BUSY_FEATURE)
    layer, index = page.evaluate(
        "i => window.__explorer.store.get().graph.nodes[i].id", node
    ).split("_")[:2]
    feature = Feature.objects.get(transcoder_set__slug="clt", layer=int(layer), index=int(index))
    words = [" extraordinary", " circumstances", " notwithstanding", " Austin"] * 8
    ActivationExample.objects.filter(feature=feature).update(
        tokens=words, values=[float(k % 5) for k in range(len(words))], max_value=4.0, max_index=4
    )
    select(page, node)
    page.wait_for_selector(".feature-panel .logit-chip")
    page.wait_for_selector(".feature-panel .example .tok")
    layout = page.evaluate("""() => {
      const box = document.querySelector('.feature-panel .logits');
      const h = box.querySelector('h4').getBoundingClientRect();
      const chips = [...box.querySelectorAll('.logit-chip')].map(c => c.getBoundingClientRect());
      const broken = [...document.querySelectorAll('.feature-panel .example .tok')]
        .filter(t => t.textContent.trim() && t.getClientRects().length > 1).map(t => t.textContent);
      const lines = new Set([...document.querySelectorAll('.feature-panel .example .tok')]
        .map(t => Math.round(t.getBoundingClientRect().top))).size;
      return { headLeft: h.left, headBottom: h.bottom, chips: chips.map(c => [c.left, c.top, c.height]), broken, lines };
    }""")
    first_left, first_top, _ = layout["chips"][0]
    assert abs(first_left - layout["headLeft"]) < 2, layout
    assert first_top >= layout["headBottom"] - 1, layout
    assert max(height for _, _, height in layout["chips"]) < 24, layout
    assert layout["lines"] > 1, "the snippet should wrap"
    assert layout["broken"] == [], "no token may be split across lines"
    page.locator(".feature-panel").screenshot(path=str(output_dir / "walk-feature-panel.png"))


def test_a_logit_difference_label_fits_in_the_canvas(
    page: Any, live_server: Any, output_dir: Path
) -> None:
    from graphs import services
    from tests.e2e.synthetic_graph import synthetic_graph

    document = synthetic_graph(200, 1200, n_logits=1, slug="diff-graph")
    label = "logit( Mary)-logit( John)"
    for node in document["nodes"]:
        if node["feature_type"] == "logit":
            node["clerp"] = f'Output "{label}" (p=1.000)'
            node["token_prob"] = 1.0
    import_synthetic(10, 10, slug="diff-setup", with_dashboards=False)  # the model and set
    services.import_graph_bytes(
        json.dumps(document).encode(),
        model_slug="synthetic",
        transcoder_set_slug="clt",
        slug="diff-graph",
        owner=None,
        visibility=Visibility.PUBLIC,
    )
    open_explorer(page, f"{live_server.url}/graphs/synthetic/diff-graph")
    fit = page.evaluate("""() => {
      const e = window.__explorer; const s = e.store.get(); const g = s.graph;
      let logit = -1; for (let i = 0; i < g.n; i++) if (g.kind[i] === 3) logit = i;
      const at = e.linkGraph.clientPosition(logit);
      const rect = document.querySelector('.lg-base').getBoundingClientRect();
      const ctx = document.createElement('canvas').getContext('2d'); ctx.font = '11px system-ui, sans-serif';
      const w = ctx.measureText(g.nodes[logit].token + ' 100%').width;
      return { up: at.y - rect.top - 12, right: rect.right - at.x, rise: w * Math.sin(Math.PI / 3), run: w * Math.cos(Math.PI / 3) };
    }""")
    assert fit["up"] >= fit["rise"], fit
    assert fit["right"] >= fit["run"], fit
    page.locator(".link-graph").screenshot(path=str(output_dir / "walk-logit-diff.png"))


def test_opening_a_past_run_restores_its_rows_and_titles_it_with_labels(
    page: Any, url: str, graph: Graph, alice: User
) -> None:
    from steering.models import SteeringRun

    open_explorer(page, url)
    node = page.evaluate(BUSY_FEATURE)
    info = page.evaluate(
        "i => { const n = window.__explorer.store.get().graph.nodes[i]; return [n.layer, n.feature, n.ctx, n.clerp]; }",
        node,
    )
    layer, feature, position, clerp = info
    SteeringRun.objects.create(
        kind="intervene", owner=alice, model=graph.model, graph=graph, prompt="p",
        interventions=[
            {"layer": layer, "feature": feature, "position": position, "action": "scale", "value": 3.0},
        ],
        settings={"mode": "constrained"}, visibility="public",
        result={"input_tokens": [], "activations": [], "logits": []},
    )  # fmt: skip
    page.reload()
    page.wait_for_selector("#explorer[data-ready='1']")
    title = page.locator(".test-history li button.link-button")
    title.wait_for()
    expected = f"Intervene: ×3 {clerp or f'L{layer}/{feature}'}@{position} · constrained"
    assert title.inner_text() == expected
    title.click()
    row = page.locator(".test-row").first
    assert row.locator("select[name=action]").input_value() == "scale"
    assert row.locator("input[name=value]").input_value() == "3"
    assert page.evaluate("() => window.__explorer.store.get().pinned") == [node]


def test_the_subgraph_names_its_layers_and_draws_arrowheads_and_weights(
    page: Any, url: str, output_dir: Path
) -> None:
    open_explorer(page, url)
    node = page.evaluate(BUSY_FEATURE)
    page.evaluate(
        """i => { const s = window.__explorer.store.get(); const g = s.graph; const pins = [i];
        for (let j = g.inStart[i]; j < g.inStart[i + 1] && pins.length < 4; j++) pins.push(g.edgeSrc[g.inEdges[j]]);
        for (let j = g.outStart[i]; j < g.outStart[i + 1] && pins.length < 7; j++) pins.push(g.edgeDst[g.outEdges[j]]);
        window.__explorer.store.set({ pinned: [...new Set(pins)] }); }""",
        node,
    )
    svg = page.locator(".subgraph-svg")
    edges = svg.locator("path.sg-edge")
    assert edges.count() >= 3
    assert all(
        (edges.nth(k).get_attribute("marker-end") or "").startswith("url(#sg-arrow-")
        for k in range(edges.count())
    )
    assert svg.locator("text.sg-weight").count() >= 3
    rows = svg.locator("text.sg-row").evaluate_all("els => els.map(e => e.textContent)")
    assert len(rows) >= 2
    assert all(r in {"Emb", "Logit"} or r.startswith("L") for r in rows)
    page.locator(".subgraph").screenshot(path=str(output_dir / "walk-subgraph.png"))


# The (edge, label) pairs where a drawn edge passes through a node's label, as the browser lays
# the text out (its box shrunk by 1 px for antialiasing), sampled every 2 px along the edge; and
# the same for straight lines between the same ends, as the edges were drawn before.
EDGES_THROUGH_LABELS = """() => {
  const svg = document.querySelector('.subgraph-svg');
  const texts = [...svg.querySelectorAll('text.sg-label')];
  const boxes = texts.map(t => t.getBoundingClientRect());
  const edges = [...svg.querySelectorAll('path.sg-edge')];
  const through = (points) => {
    const hit = new Set();
    for (const [x, y] of points) boxes.forEach((r, k) => {
      if (x > r.left + 1 && x < r.right - 1 && y > r.top + 1 && y < r.bottom - 1) hit.add(k);
    });
    return [...hit].map(k => texts[k].textContent);
  };
  const drawn = [], straight = [];
  for (const edge of edges) {
    const m = edge.getScreenCTM(); const length = edge.getTotalLength();
    const screen = p => [m.a * p.x + m.c * p.y + m.e, m.b * p.x + m.d * p.y + m.f];
    const along = [], chord = [];
    const [x0, y0] = screen(edge.getPointAtLength(0)), [x1, y1] = screen(edge.getPointAtLength(length));
    for (let d = 0; d <= length; d += 2) along.push(screen(edge.getPointAtLength(d)));
    const n = Math.ceil(Math.hypot(x1 - x0, y1 - y0) / 2);
    for (let k = 0; k <= n; k++) chord.push([x0 + (x1 - x0) * k / n, y0 + (y1 - y0) * k / n]);
    for (const label of through(along)) drawn.push(label);
    for (const label of through(chord)) straight.push(label);
  }
  return { edges: edges.length, curved: edges.filter(e => e.getAttribute('d').includes('Q')).length,
           drawn, straight };
}"""


@pytest.mark.parametrize("pins", [7, 14])
def test_edges_in_the_subgraph_go_around_the_labels_not_through_them(
    page: Any, url: str, output_dir: Path, pins: int
) -> None:
    open_explorer(page, url)
    node = page.evaluate(BUSY_FEATURE)
    # A busy feature with its strongest inputs and outputs.
    page.evaluate(
        """([i, n]) => { const s = window.__explorer.store.get(); const g = s.graph; const pins = [i];
        for (let j = g.inStart[i]; j < g.inStart[i + 1] && pins.length < n / 2; j++) pins.push(g.edgeSrc[g.inEdges[j]]);
        for (let j = g.outStart[i]; j < g.outStart[i + 1] && pins.length < n; j++) pins.push(g.edgeDst[g.outEdges[j]]);
        window.__explorer.store.set({ pinned: [...new Set(pins)] }); }""",
        [node, pins],
    )
    found = page.evaluate(EDGES_THROUGH_LABELS)
    page.locator(".subgraph").screenshot(path=str(output_dir / f"walk-subgraph-{pins}-pins.png"))
    assert found["curved"] >= 1, found  # straight, some edges would cross a label
    assert found["straight"], found
    if pins == 7:
        assert found["drawn"] == [], found
    else:
        # 14 units and ~30 edges in a 330 px panel: a logit's label can sit where edges arrive
        # from below, and labels never overlap each other; bending still clears most crossings.
        assert len(found["drawn"]) < len(found["straight"]), found
