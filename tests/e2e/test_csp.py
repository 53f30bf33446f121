"""The pages work under the Content-Security-Policy: the browser reports no violation while the
explorer opens, selects a node, loads a dashboard and exports, framed as an embed by another
origin, and on the feature page (whose histogram bars are inline styles)."""

from __future__ import annotations

import http.server
import threading
from typing import Any

import pytest

from tests.e2e.conftest import import_synthetic
from tests.e2e.test_explorer import BUSY_FEATURES, click_node, open_explorer

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _violations(page: Any) -> list[str]:
    found: list[str] = []
    page.on(
        "console",
        lambda message: (
            found.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    return found


def test_the_explorer_runs_under_the_policy(page: Any, live_server: Any) -> None:
    graph = import_synthetic(300, 3000, slug="csp-graph")
    violations = _violations(page)
    open_explorer(page, f"{live_server.url}/graphs/{graph.model.slug}/{graph.slug}")
    node_id = page.evaluate(BUSY_FEATURES, 1)[0]
    click_node(page, node_id)
    page.locator(".feature-body").filter(has_not_text="loading").wait_for()
    layer, index = node_id.split("_")[:2]
    page.goto(f"{live_server.url}/features/synthetic/clt/{layer}/{index}")
    page.locator(".example").first.wait_for()
    assert violations == []
    assert page.errors == []


def test_an_embed_opens_inside_another_sites_frame(page: Any, live_server: Any) -> None:
    graph = import_synthetic(200, 2000, slug="csp-embed", with_dashboards=False)
    embed = f"{live_server.url}/graphs/{graph.model.slug}/{graph.slug}?embed=1"
    body = f'<iframe src="{embed}" width="900" height="600"></iframe>'.encode()

    class OtherSite(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    # Another origin on loopback: a second server, on its own port.
    other = http.server.ThreadingHTTPServer(("127.0.0.1", 0), OtherSite)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    violations = _violations(page)
    try:
        page.goto(f"http://127.0.0.1:{other.server_address[1]}/")
        frame = page.frame_locator("iframe")
        frame.locator("#explorer[data-ready='1']").wait_for(timeout=20_000)
    finally:
        other.shutdown()
        other.server_close()
    assert violations == []
