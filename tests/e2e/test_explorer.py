"""The graph explorer in a real browser: open a graph, hover, click, pin, group, label, share the
URL, prune, search, and survive hostile URLs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import import_synthetic, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# Helpers evaluated in the page, through the handle the explorer exposes for tests and benchmarks.
NODE_AT = """id => {
  const e = window.__explorer; const i = e.store.get().graph.index.get(id);
  return i === undefined ? null : e.linkGraph.clientPosition(i);
}"""
BUSY_FEATURES = """n => {
  const s = window.__explorer.store.get(); const g = s.graph; const out = [];
  for (let i = 0; i < g.n; i++) {
    if (g.kind[i] !== 1 || s.view.visible[i] !== 1) continue;
    out.push([g.inStart[i + 1] - g.inStart[i] + g.outStart[i + 1] - g.outStart[i], g.nodes[i].id]);
  }
  out.sort((a, b) => b[0] - a[0]);
  return out.slice(0, n).map(x => x[1]);
}"""
NEIGHBOURS = """([id, n]) => {
  const s = window.__explorer.store.get(); const g = s.graph; const i = g.index.get(id); const out = [];
  for (const [start, edges, end] of [[g.inStart, g.inEdges, g.edgeSrc], [g.outStart, g.outEdges, g.edgeDst]]) {
    let k = 0;
    for (let j = start[i]; j < start[i + 1] && k < n; j++) {
      const other = end[edges[j]];
      if (s.view.visible[other] === 1 && g.kind[other] === 1) { out.push(g.nodes[other].id); k++; }
    }
  }
  return out;
}"""
STATE = """() => {
  const s = window.__explorer.store.get(); const id = i => s.graph.nodes[i].id;
  return {
    selected: s.selected >= 0 ? id(s.selected) : null,
    pinned: s.pinned.map(id),
    groups: s.groups.map(g => [g.name, ...g.members.map(id)]),
    labels: [...s.labels].map(([i, l]) => [id(i), l]),
    nodeThreshold: s.thresholds.node,
  };
}"""

# What the page made of the graph, whole, to compare two ways of reading it.
GRAPH_READ = """() => {
  const e = window.__explorer; const g = e.store.get().graph; const a = x => Array.from(x);
  return {source: e.graphSource, ids: g.nodes.map(n => n.id), edgeSrc: a(g.edgeSrc),
    edgeDst: a(g.edgeDst), edgeWeight: a(g.edgeWeight), edgeAbsBefore: a(g.edgeAbsBefore),
    edgeAbsTotal: g.edgeAbsTotal,
    outEdges: a(g.outEdges), inEdges: a(g.inEdges), inputAbsSum: a(g.inputAbsSum)};
}"""


@pytest.fixture
def graph_url(live_server: Any) -> str:
    graph = import_synthetic(1000, 12000, slug="demo-graph")
    return f"{live_server.url}/graphs/{graph.model.slug}/{graph.slug}"


def open_explorer(page: Any, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("#explorer[data-ready='1']", timeout=20_000)


def click_node(page: Any, node_id: str, *, modifiers: list[str] | None = None) -> None:
    at = page.evaluate(NODE_AT, node_id)
    assert at is not None, f"{node_id} is not drawn"
    page.mouse.move(at["x"], at["y"])
    if modifiers:
        for key in modifiers:
            page.keyboard.down(key)
    page.mouse.click(at["x"], at["y"])
    if modifiers:
        for key in modifiers:
            page.keyboard.up(key)


def test_hovering_and_clicking_a_node_shows_its_tooltip_feature_and_connections(
    page: Any, graph_url: str, output_dir: Path
) -> None:
    open_explorer(page, graph_url)
    page.screenshot(path=str(output_dir / "explorer-open.png"))
    first = page.evaluate(BUSY_FEATURES, 1)[0]
    at = page.evaluate(NODE_AT, first)
    page.mouse.move(at["x"], at["y"])
    tooltip = page.locator(".lg-tooltip")
    tooltip.wait_for(state="visible")
    assert "L" in tooltip.inner_text()
    click_node(page, first)
    assert page.evaluate(STATE)["selected"] == first
    rows = page.locator(".connections .vrow[data-node]")
    rows.first.wait_for()
    assert rows.count() > 3
    assert "Inputs (" in page.locator(".connections").inner_text()
    # The feature panel loads the dashboard through the bulk lookup API (or says it has none).
    page.locator(".feature-body").filter(has_not_text="loading").wait_for()
    page.mouse.move(5, 5)
    page.screenshot(path=str(output_dir / "explorer-selected.png"))
    assert page.errors == []


def test_pins_groups_and_labels_survive_a_copied_link(
    page: Any, browser: Any, graph_url: str, output_dir: Path
) -> None:
    open_explorer(page, graph_url)
    a, b, c = page.evaluate(BUSY_FEATURES, 3)
    click_node(page, a, modifiers=["Control"])
    click_node(page, b, modifiers=["Control"])
    assert page.evaluate(STATE)["pinned"] == [a, b]
    # g + click on both pinned nodes in the link graph, release g: they become one group.
    page.keyboard.down("g")
    click_node(page, a)
    click_node(page, b)
    page.keyboard.up("g")
    assert page.evaluate(STATE)["groups"] == [["group 1", a, b]]
    # Rename the group inline in the subgraph.
    page.locator("g.sg-unit").first.dblclick()
    page.locator(".sg-edit").fill("Texas things")
    page.locator(".sg-edit").press("Enter")
    # Select a third node and label it.
    click_node(page, c)
    page.locator(".label-edit").fill("my <b>label</b>")
    page.locator(".label-edit").press("Enter")
    page.mouse.move(5, 5)
    state = page.evaluate(STATE)
    assert state["groups"] == [["Texas things", a, b]]
    assert state["labels"] == [[c, "my <b>label</b>"]]
    # Pins, groups and labels are written to the URL as they change (only viewport and
    # threshold writes are throttled): wait for the URL to carry all three.
    params = ("pinnedIds=", "supernodes=", "clerps=")
    page.wait_for_url(lambda url: all(param in url for param in params), timeout=5_000)
    page.screenshot(path=str(output_dir / "explorer-subgraph.png"), full_page=True)
    url = page.url

    other = browser.new_context(viewport={"width": 1400, "height": 950}).new_page()
    open_explorer(other, url)
    assert other.evaluate(STATE) == state
    assert "Texas things" in other.locator(".subgraph").inner_text()
    # Labels are text, never HTML.
    assert other.locator(".subgraph b").count() == 0
    other.context.close()


def test_back_and_forward_move_between_selections(page: Any, graph_url: str) -> None:
    open_explorer(page, graph_url)
    a, b = page.evaluate(BUSY_FEATURES, 2)
    click_node(page, a)
    click_node(page, b)
    assert page.evaluate(STATE)["selected"] == b
    page.go_back()
    wait_until(
        page,
        f"window.__explorer.store.get().graph.nodes[window.__explorer.store.get().selected]?.id === '{a}'",
    )
    page.go_forward()
    wait_until(
        page,
        f"window.__explorer.store.get().graph.nodes[window.__explorer.store.get().selected]?.id === '{b}'",
    )


def test_the_pruning_slider_shows_fewer_nodes(page: Any, graph_url: str) -> None:
    open_explorer(page, graph_url)
    counts = page.locator("[data-testid=counts]")
    before = int(counts.inner_text().split(" / ")[0].replace(",", ""))
    page.locator("input[name=node-threshold]").fill("0.3")
    wait_until(
        page,
        f"parseInt(document.querySelector('[data-testid=counts]').textContent.replace(/,/g, '')) < {before}",
    )
    assert page.evaluate(STATE)["nodeThreshold"] == pytest.approx(0.3)


def test_search_finds_a_feature_by_id_and_selects_it(
    page: Any, graph_url: str, output_dir: Path
) -> None:
    open_explorer(page, graph_url)
    target = page.evaluate(BUSY_FEATURES, 1)[0]
    layer, index, _pos = target.split("_")
    page.keyboard.press("/")
    page.keyboard.type(f"L{layer}/{index}")
    result = page.locator(".search-results li[data-node]").first
    result.wait_for()
    page.screenshot(path=str(output_dir / "explorer-search.png"))
    result.click()
    assert page.evaluate(STATE)["selected"] == target
    page.keyboard.press("Escape")  # leaves the search box
    page.locator("body").press("Escape")
    assert page.evaluate(STATE)["selected"] is None


def test_the_help_overlay_lists_the_shortcuts(page: Any, graph_url: str) -> None:
    open_explorer(page, graph_url)
    page.locator("body").press("?")
    overlay = page.locator(".help-overlay")
    overlay.wait_for(state="visible")
    assert "Ctrl/Cmd + click" in overlay.inner_text()
    page.locator("body").press("Escape")
    overlay.wait_for(state="hidden")


@pytest.mark.parametrize(
    "query",
    [
        "?clickedId=%3Cscript%3Ealert(1)%3C/script%3E&pinnedIds=,,,%00",
        "?supernodes=%5B%5B%22x%22%2C%7B%7D%5D%5D&clerps=%7B%22a%22%3A1%7D&view=NaN,1,0",
        "?pruningThreshold=-1e999&edgeThreshold=abc&linkType=%22&supernodes=" + "%5B" * 5000,
        "?subgraph=..%2F..%2Fadmin&view=1e308,1e308,1e308",
        "?subgraph=nonexistent",
    ],
)
def test_hostile_url_parameters_never_break_the_page(page: Any, graph_url: str, query: str) -> None:
    open_explorer(page, graph_url + query)
    # The link graph's own three layers (the compare overlay is a fourth, empty until used).
    assert page.locator(".link-graph canvas:not(.compare-overlay)").count() == 3
    assert page.errors == []


def test_exports_carry_the_view(page: Any, graph_url: str, output_dir: Path) -> None:
    open_explorer(page, graph_url)
    centre = page.evaluate(BUSY_FEATURES, 1)[0]
    busy = [centre, *page.evaluate(NEIGHBOURS, [centre, 3])]
    for node in busy:
        click_node(page, node, modifiers=["Control"])
    # Group the two strongest inputs with g + click in the subgraph, and name the group.
    page.keyboard.down("g")
    for node in busy[1:3]:
        click_node(page, node)
    page.keyboard.up("g")
    page.locator("g.sg-unit").first.dblclick()
    page.locator(".sg-edit").fill("strong inputs")
    page.locator(".sg-edit").press("Enter")
    page.mouse.move(5, 5)
    page.screenshot(path=str(output_dir / "explorer-pinned.png"), full_page=True)
    with page.expect_download() as download:
        page.get_by_role("button", name="JSON", exact=True).click()
    document = json.loads(Path(download.value.path()).read_text())
    assert document["qParams"]["pinnedIds"] == busy
    # The page read the graph from its sidecar and kept none of its node records: the export read
    # them again from the sidecar, and they are the artifact's own.
    assert page.evaluate("() => window.__explorer.graphSource") == "binary"
    artifact_url = page.evaluate(
        "() => new URL(document.querySelector('#explorer').dataset.graphUrl, location.href).href"
    )
    artifact = json.loads(page.request.get(artifact_url).body())
    assert len(document["nodes"]) == 1000
    assert document["nodes"] == artifact["nodes"]
    for name, suffix in (
        ("SVG", ".svg"),
        ("PNG", ".png"),
        ("Subgraph SVG", ".svg"),
        ("Subgraph PNG", ".png"),
    ):
        with page.expect_download() as download:
            page.get_by_role("button", name=name, exact=True).click()
        target = output_dir / f"export-{name.lower().replace(' ', '-')}{suffix}"
        download.value.save_as(target)
        assert target.stat().st_size > 500, name
    assert page.errors == []


def test_the_page_reads_the_binary_sidecar_and_the_json_when_there_is_none(
    page: Any, graph_url: str
) -> None:
    open_explorer(page, graph_url)
    from_binary = page.evaluate(GRAPH_READ)
    # An older server: no sidecar at that address. The page reads the JSON, to the same graph.
    page.route("**/artifact/binary", lambda route: route.fulfill(status=404, body=""))
    open_explorer(page, graph_url)
    from_json = page.evaluate(GRAPH_READ)
    assert (from_binary.pop("source"), from_json.pop("source")) == ("binary", "json")
    assert len(from_binary["edgeSrc"]) == 12000
    assert from_binary == from_json
    assert page.errors == []


def test_the_page_parses_in_this_thread_when_its_loader_worker_cannot_start(
    page: Any, graph_url: str
) -> None:
    # The worker's script does not load (a proxy or a policy blocks it): the page does the work.
    # (Blocked before the first open: a cached script would not be asked for again.)
    blocked: list[str] = []

    def block(route: Any) -> None:
        blocked.append(route.request.url)
        route.fulfill(status=404, body="")

    page.route("**/loader.worker-*.js", block)
    open_explorer(page, graph_url)
    without = page.evaluate(GRAPH_READ)
    page.unroute("**/loader.worker-*.js")
    open_explorer(page, graph_url)
    with_worker = page.evaluate(GRAPH_READ)
    assert len(blocked) == 1
    assert with_worker.pop("source") == "binary"
    # Known failed before the sidecar's document arrived, the page parses it itself (binary); if
    # the worker failed holding the document, the page reads the graph's JSON (json).
    assert without.pop("source") in ("binary", "json")
    assert without == with_worker
    assert page.errors == []


def test_leaving_the_page_frees_its_graphs_arrays_and_a_page_kept_for_going_back_keeps_them(
    page: Any, graph_url: str
) -> None:
    open_explorer(page, graph_url)
    sizes = """() => { const s = window.__explorer.store.get();
      return [s.graph.edgeSrc, s.graph.outEdges, s.graph.kind, s.view.visible, s.prune.order]
        .map(a => a.buffer.byteLength); }"""
    before = page.evaluate(sizes)
    assert before[0] == 4 * 12000
    assert 0 not in before
    leave = "p => dispatchEvent(new PageTransitionEvent('pagehide', {persisted: p}))"
    page.evaluate(leave, True)  # into the back/forward cache: it may be shown again
    assert page.evaluate(sizes) == before
    page.evaluate(leave, False)
    assert page.evaluate(sizes) == [0, 0, 0, 0, 0]
    assert page.errors == []
    # A page really left runs no more code; this one, left only by a synthetic event, still runs
    # its idle work (the edge count) on the freed arrays, which throws. That is not the next page.
    open_explorer(page, graph_url)
    page.errors.clear()
    open_explorer(page, graph_url)
    assert page.evaluate(sizes) == before
    assert page.errors == []


# The inputs list's rows as drawn, against its rows worked out here from the graph: a header,
# the positive inputs, a header, the negative ones (each by |weight|, the CSR order).
LIST_ROWS = """() => {
  const s = window.__explorer.store.get(); const g = s.graph; const i = s.selected;
  const pos = [], neg = [];
  for (let j = g.inStart[i]; j < g.inStart[i + 1]; j++) {
    const other = g.inSrc[j]; if (s.view.visible[other] !== 1) continue;
    (g.edgeWeight[g.inEdges[j]] >= 0 ? pos : neg).push(other);
  }
  const want = [];
  if (pos.length) want.push('Positive (' + pos.length + ')', ...pos);
  if (neg.length) want.push('Negative (' + neg.length + ')', ...neg);
  const list = document.querySelectorAll('.connections-column')[0];
  const bad = [];
  for (const row of list.querySelectorAll('.vrow')) {
    const k = Math.round(new DOMMatrix(row.style.transform).m42 / 24);
    const w = want[k];
    if (typeof w === 'string') {
      if (row.textContent !== w || row.dataset.node !== undefined) bad.push([k, 'header', row.textContent]);
      continue;
    }
    const node = g.nodes[w]; const pin = row.querySelector('button[data-act=pin]');
    const where = row.querySelector('.vrow-where')?.textContent;
    const expectWhere = (node.kind === 1 ? 'L' + node.layer + '/' + node.feature : node.kind === 2 ? 'Err L' + node.layer : node.kind === 0 ? 'Emb' : 'Logit') + ' @' + node.ctx;
    if (row.dataset.node !== String(w) || where !== expectWhere || pin?.dataset.node !== String(w)
        || row.classList.contains('is-pinned') !== s.pinned.includes(w)
        || (pin.textContent === 'Unpin') !== s.pinned.includes(w)) bad.push([k, w, row.dataset.node, where, pin?.textContent]);
  }
  return {bad, drawn: list.querySelectorAll('.vrow').length, rows: want.length};
}"""


def test_the_connections_list_rewrites_its_rows_to_the_right_ones_as_it_scrolls(
    page: Any, graph_url: str
) -> None:
    open_explorer(page, graph_url)
    # The node with most inputs (a logit), so that the list scrolls far.
    page.evaluate("""() => { const e = window.__explorer; const g = e.store.get().graph; let best = -1, node = -1;
      for (let i = 0; i < g.n; i++) { const d = g.inStart[i + 1] - g.inStart[i]; if (d > best) { best = d; node = i; } }
      e.store.set({selected: node}); }""")
    list_ = page.locator(".connections-column .vlist").first
    scroll = "f => { const l = document.querySelector('.connections-column .vlist'); l.scrollTop = (l.scrollHeight - l.clientHeight) * f; }"
    checked = 0
    for fraction in [0, 0.003, 0.5, 0.51, 1, 0.2, 0]:
        page.evaluate(scroll, fraction)
        page.wait_for_timeout(60)  # the list redraws on the next frame
        got = page.evaluate(LIST_ROWS)
        assert got["bad"] == [], (fraction, got["bad"][:3])
        assert got["drawn"] > 10
        assert got["rows"] > 200
        checked += got["drawn"]
    # Pinning from a row's button: that row, and the same node scrolled away and back, say so.
    first = page.locator(".connections-column .vrow[data-node]").first
    node = first.get_attribute("data-node")
    first.locator("button[data-act=pin]").click()
    wait_until(page, f"window.__explorer.store.get().pinned.includes({node})")
    for fraction in [0, 1, 0]:
        page.evaluate(scroll, fraction)
        page.wait_for_timeout(60)
        assert page.evaluate(LIST_ROWS)["bad"] == []
    assert list_.locator(f".vrow[data-node='{node}'] button[data-act=pin]").inner_text() == "Unpin"
    assert checked > 100
    assert page.errors == []


def test_the_density_filter_hides_dense_features_once_dashboards_are_loaded(
    page: Any, graph_url: str
) -> None:
    open_explorer(page, graph_url)
    wait_until(page, "window.__explorer.store.get().density !== null")
    before = page.evaluate("window.__explorer.store.get().view.nVisible")
    page.locator("input[name=density-threshold]").fill("-3")
    wait_until(page, f"window.__explorer.store.get().view.nVisible < {before}")
    # The loaded explanations are searchable too.
    page.locator(".search input").fill("mentions of city")
    page.locator(".search-results li[data-node]").first.wait_for()


def test_a_big_graph_opens_as_a_skeleton_and_loads_links_for_the_nodes_in_focus(
    page: Any, graph_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Make the 12,000-link test graph count as big: the page gets its 500 strongest links.
    from graphs import pages

    monkeypatch.setattr(pages, "LINKS_ON_DEMAND_ABOVE", 1000)
    monkeypatch.setattr(pages, "SKELETON_LINKS", 500)
    # Its sidecar would give the whole graph (the next test); here it is too big for that too.
    monkeypatch.setattr(pages, "WHOLE_FROM_SIDECAR_UP_TO", 1000)
    open_explorer(page, graph_url)
    assert page.evaluate("window.__explorer.store.get().graph.nEdges") == 500
    assert "links are loaded" in page.locator(".explorer-note").inner_text()
    assert "loaded of 12,000" in page.locator("[data-testid=counts]").inner_text()
    node = page.evaluate(BUSY_FEATURES, 1)[0]
    click_node(page, node)
    wait_until(page, "window.__explorer.store.get().graph.nEdges > 500")
    page.locator(".connections .vrow[data-node]").first.wait_for()
    assert page.errors == []


def test_a_big_graph_opens_whole_from_its_sidecar_and_as_a_skeleton_without_one(
    page: Any, graph_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from graphs import pages

    monkeypatch.setattr(pages, "LINKS_ON_DEMAND_ABOVE", 1000)
    monkeypatch.setattr(pages, "SKELETON_LINKS", 500)
    open_explorer(page, graph_url)
    assert page.evaluate("window.__explorer.store.get().graph.nEdges") == 12000
    assert "loaded of" not in page.locator("[data-testid=counts]").inner_text()
    # The sidecar cannot be read: the page falls back to the skeleton's JSON.
    page.route("**/artifact/binary", lambda route: route.fulfill(status=404, body=""))
    open_explorer(page, graph_url)
    assert page.evaluate("window.__explorer.store.get().graph.nEdges") == 500
    assert "loaded of 12,000" in page.locator("[data-testid=counts]").inner_text()
    assert page.errors == []


def test_the_viewport_follows_the_keyboard_and_reopens_from_the_link(
    page: Any, browser: Any, graph_url: str
) -> None:
    open_explorer(page, graph_url)
    page.locator(".link-graph").focus()
    for key in ("+", "+", "ArrowLeft", "ArrowUp"):
        page.keyboard.press(key)
    wait_until(page, "location.search.includes('view=')")
    viewport = page.evaluate("window.__explorer.store.get().viewport")
    assert viewport["k"] > 0
    other = browser.new_context(viewport={"width": 1400, "height": 950}).new_page()
    open_explorer(other, page.url)
    reopened = other.evaluate("window.__explorer.store.get().viewport")
    assert reopened == pytest.approx(viewport, rel=1e-3, abs=0.1)
    other.keyboard.press("0")
    assert other.evaluate("window.__explorer.store.get().viewport")["k"] < reopened["k"]
    other.context.close()


def test_a_saved_subgraph_opens_from_its_share_slug(page: Any, graph_url: str, alice: Any) -> None:
    from core.visibility import Visibility
    from graphs.models import Graph, Subgraph

    graph = Graph.objects.get(slug="demo-graph")
    open_explorer(page, graph_url)
    a, b = page.evaluate(BUSY_FEATURES, 2)
    subgraph = Subgraph.objects.create(
        graph=graph,
        owner=alice,
        title="saved",
        pinned_ids=[a, b],
        supernodes=[["pair", a, b]],
        node_labels={a: "first"},
        thresholds={"node": 0.5, "edge": 0.9, "density": 1},
        clicked_id=b,
        visibility=Visibility.PUBLIC,
    )
    open_explorer(page, f"{graph_url}?subgraph={subgraph.share_slug}")
    state = page.evaluate(STATE)
    assert state["selected"] == b
    assert state["pinned"] == [a, b]
    assert state["groups"] == [["pair", a, b]]
    assert state["labels"] == [[a, "first"]]
    assert state["nodeThreshold"] == 0.5
