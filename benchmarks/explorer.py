"""Benchmark the graph explorer in headless Chromium on synthetic graphs.

    .venv/bin/python benchmarks/explorer.py            # 10,000 nodes / 200,000 links and 1,000 nodes
    .venv/bin/python benchmarks/explorer.py --sizes 1000:12000 --sources binary --json out.json

Measures, per graph and per source the page reads it from (``binary``: the server's sidecar,
contract/graph_binary.py, with the JSON beside it as the page gets them from the site; ``json``:
the JSON alone, as from an older server or another host): page open to first interactive draw (navigation start to the first painted
frame with every panel set up, graph download and parse included), hover repaint (hit test +
store update + the hover layer's repaint, p50/p95 over many nodes), pruning slider update (input
event to repainted frame), tab memory (renderer process RSS and JS heap; then again after a full
garbage collection), and the explorer's JS/CSS size gzipped. The page is the built bundle
(static/dist, `cd frontend && npm run build`) in a harness that mirrors
graphs/templates/graphs/explorer.html, served by a local HTTP server that sends the graph gzipped
as the artifact endpoint does (and the sidecar, encoded by the server's encoder, the same way);
no database is needed. Results go to ``--json`` (default test-output/benchmarks/explorer.json)
and a screenshot per graph next to it.
"""

from __future__ import annotations

import argparse
import functools
import gzip
import hashlib
import http.server
import json
import os
import statistics
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from contract import graph_binary  # noqa: E402
from tests.e2e.synthetic_graph import synthetic_graph  # noqa: E402

DIST = ROOT / "static" / "dist"
OUT = ROOT / "test-output" / "benchmarks"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]

HOVER = """async (count) => {
  const e = window.__explorer; const s = e.store.get(); const g = s.graph;
  const canvas = document.querySelector('.lg-hover');
  const nodes = [];
  for (let i = 0; i < g.n; i++) if (s.view.visible[i] === 1) nodes.push(i);
  // Half random nodes, half the busiest ones (most edges to draw).
  const degree = i => g.inStart[i + 1] - g.inStart[i] + g.outStart[i + 1] - g.outStart[i];
  const busiest = [...nodes].sort((a, b) => degree(b) - degree(a)).slice(0, count / 2);
  let seed = 7; const rand = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
  const picks = [...busiest, ...Array.from({length: count / 2}, () => nodes[Math.floor(rand() * nodes.length)])];
  const frame = () => new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)));
  const out = []; const latency = []; let hits = 0;
  for (const i of picks) {
    const p = e.linkGraph.clientPosition(i);
    if (!p) continue;
    const t0 = performance.now();
    canvas.dispatchEvent(new PointerEvent('pointermove', {clientX: p.x, clientY: p.y, bubbles: true}));
    const handler = performance.now() - t0;
    await frame();
    const last = e.linkGraph.scheduler.stats.frames.at(-1);
    if (e.store.get().hovered >= 0) hits++;
    out.push(handler + (last && last.layers.includes('hover') ? last.ms : 0));
    latency.push(last ? last.latencyMs + handler : NaN);
  }
  return {repaint: out, latency, hits, degreeMax: degree(busiest[0] ?? 0)};
}"""

SLIDER = """async (values) => {
  const e = window.__explorer;
  const input = document.querySelector('input[name=node-threshold]');
  const frame = () => new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)));
  // Something selected and pinned, as in real use: the focus layer has edges to redraw too.
  const s = e.store.get(); let busiest = -1, best = -1;
  for (let i = 0; i < s.graph.n; i++) {
    const d = s.graph.outStart[i + 1] - s.graph.outStart[i];
    if (s.view.visible[i] === 1 && d > best) { best = d; busiest = i; }
  }
  e.store.set({selected: busiest});
  await frame();
  const out = []; const latency = []; const counts = [];
  for (const v of values) {
    const t0 = performance.now();
    input.value = String(v);
    input.dispatchEvent(new Event('input', {bubbles: true}));
    const sync = performance.now() - t0;
    await frame();
    const last = e.linkGraph.scheduler.stats.frames.at(-1);
    out.push(sync + (last ? last.ms : 0));
    latency.push(last ? last.latencyMs + sync : NaN);
    counts.push(e.store.get().view.nVisible);
  }
  return {ms: out, latency, counts};
}"""


SCROLL = """async (steps) => {
  // The node with the most inputs (a logit), its inputs list scrolled from top to bottom.
  const e = window.__explorer; const s = e.store.get(); const g = s.graph;
  let best = -1, node = -1;
  for (let i = 0; i < g.n; i++) { const d = g.inStart[i + 1] - g.inStart[i]; if (d > best) { best = d; node = i; } }
  e.store.set({selected: node});
  const frame = () => new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)));
  await frame();
  const list = document.querySelector('.connections-column .vlist');
  const rows = document.querySelectorAll('.connections-column')[0].querySelector('.vlist-spacer').offsetHeight / 24;
  const out = []; let maxRows = 0;
  for (let k = 1; k <= steps; k++) {
    const t0 = performance.now();
    list.scrollTop = (list.scrollHeight - list.clientHeight) * k / steps;
    await frame();
    out.push(performance.now() - t0);
    maxRows = Math.max(maxRows, list.querySelectorAll('.vrow').length);
  }
  return {ms: out, rows, domRows: maxRows};
}"""


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[k]


def harness(manifest: dict[str, Any], source: str) -> str:
    entry = manifest["src/explorer/main.ts"]
    css = "".join(f'<link rel="stylesheet" href="/static/dist/{c}">' for c in entry.get("css", []))
    site_css = "".join(
        f'<link rel="stylesheet" href="/static/dist/{c}">'
        for c in manifest["src/main.ts"].get("css", [])
    )
    binary = ' data-graph-binary-url="/graph.bin"' if source == "binary" else ""
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">{site_css}{css}
<script type="module" src="/static/dist/{entry["file"]}"></script></head>
<body><main><div id="explorer" data-graph-url="/graph.json"{binary} data-model="synthetic" data-set="clt">
<p class="explorer-status">Loading graph…</p></div></main></body></html>"""


class Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        for path, file, content_type in (
            ("/graph.json", "graph.json.gz", "application/json"),
            ("/graph.bin", "graph.bin.gz", "application/octet-stream"),
        ):
            if self.path.startswith(path):
                self.send_gzip(Path(self.directory) / file, content_type)
                return
        super().do_GET()

    def send_gzip(self, file: Path, content_type: str) -> None:
        body = file.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def renderer_rss_mb(browser_pid: int | None) -> float:
    """Largest RSS among Chromium renderer processes (the explorer tab), in MB."""
    best = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
            if "--type=renderer" not in cmdline or "chrom" not in cmdline:
                continue
            for line in (proc / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    best = max(best, int(line.split()[1]))
        except OSError:
            continue
    return best / 1024


def bundle_sizes(manifest: dict[str, Any]) -> dict[str, int]:
    entry = manifest["src/explorer/main.ts"]
    # The entry, its CSS, and the graph loader's worker (a separate file Vite emits for it).
    workers = [f"assets/{p.name}" for p in (DIST / "assets").glob("loader.worker-*.js")]
    files = [entry["file"], *entry.get("css", []), *workers]
    raw = sum((DIST / f).stat().st_size for f in files)
    gz = sum(len(gzip.compress((DIST / f).read_bytes(), 9)) for f in files)
    return {"raw_bytes": raw, "gzip_bytes": gz}


def write_graph(root: Path, n_nodes: int, n_links: int) -> dict[str, float]:
    """The graph's JSON and its sidecar, gzipped as the server stores them; their sizes."""
    document = synthetic_graph(n_nodes, n_links, slug=f"bench-{n_nodes}")
    data = json.dumps(document).encode()
    sidecar = graph_binary.encode(document, artifact_sha256=hashlib.sha256(data).hexdigest())
    packed = {"json": gzip.compress(data, 6), "binary": gzip.compress(sidecar, 6)}
    (root / "graph.json.gz").write_bytes(packed["json"])
    (root / "graph.bin.gz").write_bytes(packed["binary"])
    return {
        "json_mb": round(len(data) / 1e6, 1),
        "json_gzip_mb": round(len(packed["json"]) / 1e6, 1),
        "binary_mb": round(len(sidecar) / 1e6, 1),
        "binary_gzip_mb": round(len(packed["binary"]) / 1e6, 1),
    }


def run_one(
    browser: Any,
    root: Path,
    page_html: str,
    source: str,
    n_nodes: int,
    n_links: int,
    sizes: dict[str, float],
) -> dict[str, Any]:
    (root / "index.html").write_text(page_html)
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(root))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/index.html"
    try:
        context = browser.new_context(viewport={"width": 1600, "height": 1000})
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        opens = []
        for _ in range(3):  # the first open also pays for compiling the bundle
            page.goto(url)
            page.wait_for_selector("#explorer[data-ready='1']", timeout=60_000)
            opens.append(
                page.evaluate(
                    "() => ({ready: window.__explorer.linkGraph.scheduler.stats.firstDrawAt,"
                    " load: window.__explorer.loadMs, source: window.__explorer.graphSource})"
                )
            )
        if any(o["source"] != source for o in opens):
            raise SystemExit(f"the page read the graph from {opens[-1]['source']}, not {source}")
        page.wait_for_timeout(300)
        page.screenshot(path=str(OUT / f"explorer-{n_nodes}-{source}.png"))
        hover = page.evaluate(HOVER, 200)
        slider_values = [round(0.95 - 0.05 * k, 2) for k in range(16)] + [0.8]
        slider = page.evaluate(SLIDER, slider_values)
        page.wait_for_timeout(300)
        page.screenshot(path=str(OUT / f"explorer-{n_nodes}-{source}-selected.png"))
        scroll = page.evaluate(SCROLL, 60)
        heap = page.evaluate("() => performance.memory ? performance.memory.usedJSHeapSize : null")
        rss = renderer_rss_mb(None)
        # The figures above include garbage V8 has not collected yet (the tab was opened three
        # times, and the slider makes a view per step); after a full collection they are what the
        # graph and page hold.
        cdp = context.new_cdp_session(page)
        cdp.send("HeapProfiler.collectGarbage")
        live_heap = cdp.send("Runtime.getHeapUsage")
        live_rss = renderer_rss_mb(None)
        context.close()
    finally:
        server.shutdown()
    return {
        "nodes": n_nodes,
        "links": n_links,
        "source": source,
        **sizes,
        "open_to_first_draw_ms": [round(o["ready"], 1) for o in opens],
        "open_breakdown_ms": {k: round(v, 1) for k, v in opens[-1]["load"].items()},
        "hover_repaint_ms": {
            "p50": round(statistics.median(hover["repaint"]), 2),
            "p95": round(percentile(hover["repaint"], 0.95), 2),
            "max": round(max(hover["repaint"]), 2),
            "samples": len(hover["repaint"]),
            "hits": hover["hits"],
            "busiest_node_edges": hover["degreeMax"],
        },
        "hover_event_to_painted_ms_p95": round(percentile(hover["latency"], 0.95), 2),
        "slider_update_ms": {
            "p50": round(statistics.median(slider["ms"]), 2),
            "p95": round(percentile(slider["ms"], 0.95), 2),
            "max": round(max(slider["ms"]), 2),
            "visible_nodes": [slider["counts"][0], slider["counts"][-2]],
        },
        # Input event to the end of the repaint, waiting for the next animation frame included.
        "slider_event_to_painted_ms_p95": round(percentile(slider["latency"], 0.95), 2),
        # Scrolling the inputs list of the node with most inputs, top to bottom in 60 steps: time
        # from setting scrollTop to the frame after (a frame is ~16.7 ms), and DOM rows alive.
        "connections_scroll": {
            "rows": int(scroll["rows"]),
            "dom_rows_max": scroll["domRows"],
            "step_to_frame_ms_p95": round(percentile(scroll["ms"], 0.95), 2),
            "max_ms": round(max(scroll["ms"]), 2),
        },
        "tab_rss_mb": round(rss, 1),
        "js_heap_mb": round(heap / 1e6, 1) if heap else None,
        "tab_rss_after_gc_mb": round(live_rss, 1),
        # JS objects and, apart, the typed arrays' buffers (the graph's edges are most of them).
        "js_heap_after_gc_mb": round(live_heap["usedSize"] / 1e6, 1),
        "array_buffers_after_gc_mb": round(live_heap.get("backingStorageSize", 0) / 1e6, 1),
        "page_errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", default="10000:200000,1000:12000", help="nodes:links, comma-separated"
    )
    parser.add_argument(
        "--sources",
        default="binary,json",
        help="what the page reads the graph from: binary (the sidecar), json; comma-separated",
    )
    parser.add_argument("--json", type=Path, default=OUT / "explorer.json", help="results file")
    args = parser.parse_args()
    sources = args.sources.split(",")
    if not set(sources) <= {"binary", "json"}:
        sys.exit("--sources: binary and/or json")
    manifest_path = DIST / ".vite" / "manifest.json"
    if not manifest_path.exists():
        sys.exit("build the frontend first: cd frontend && npm run build")
    if not Path(CHROMIUM).exists():
        sys.exit(f"no Chromium at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    manifest = json.loads(manifest_path.read_text())
    OUT.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "bundle": bundle_sizes(manifest),
        "cpus": os.cpu_count(),
        # Other work on the machine skews every figure; the load average says how much there was.
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
        "runs": [],
    }
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
        root = Path(tmp)
        # Where the site serves the bundle: its worker is loaded from there (/static/dist/ is the
        # bundle's base), so anywhere else the page would parse the graph on the main thread.
        (root / "static").mkdir()
        (root / "static" / "dist").symlink_to(DIST)
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, args=[*ARGS, "--enable-precise-memory-info"]
        )
        for size in args.sizes.split(","):
            n_nodes, n_links = (int(x) for x in size.split(":"))
            sizes = write_graph(root, n_nodes, n_links)
            for source in sources:
                print(f"graph {n_nodes:,} nodes / {n_links:,} links from {source} …", flush=True)
                page_html = harness(manifest, source)
                results["runs"].append(
                    run_one(browser, root, page_html, source, n_nodes, n_links, sizes)
                )
        browser.close()
    results["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
