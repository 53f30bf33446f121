"""Browser flows of the site around the explorer (issue 8): screenshots of every page, upload
errors by field, saving and sharing a subgraph (alice), opening the link (bob, anonymous),
charlie's 404, API tokens, and an explanation seen on the feature page and in the explorer."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User

from core.visibility import Visibility
from features.models import Feature
from graphs.models import Graph, GraphNode
from tests.e2e.conftest import import_synthetic, log_in

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PINNED = "() => { const s = window.__explorer.store.get(); return s.pinned.map(i => s.graph.nodes[i].id); }"


@pytest.fixture
def people(alice: User, bob: User, charlie: User) -> dict[str, User]:
    return {"alice": alice, "bob": bob, "charlie": charlie}


@pytest.fixture
def graph(people: dict[str, User]) -> Graph:
    """alice's synthetic graph, unlisted, with dashboards for its features."""
    g = import_synthetic(300, 2000, slug="alices-graph")
    g.owner = people["alice"]
    g.visibility = Visibility.UNLISTED
    g.title = "Alice's <b>capital</b> graph"
    g.save(update_fields=["owner", "visibility", "title"])
    return g


def shot(page: Any, out: Path, name: str) -> None:
    page.screenshot(path=str(out / f"site-{name}.png"), full_page=True)


def open_explorer(page: Any, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("#explorer[data-ready='1']", timeout=20_000)


def test_screenshots_of_every_page(
    page: Any, browser: Any, live_server: Any, graph: Graph, output_dir: Path
) -> None:
    base = live_server.url
    node = GraphNode.objects.filter(graph=graph).order_by("influence").first()
    assert node is not None
    feature_url = f"{base}/features/synthetic/clt/{node.layer}/{node.feature_index}"
    pages = {
        "home-anonymous": f"{base}/",
        "404": f"{base}/graphs/synthetic/nope",
        "login": f"{base}/accounts/login/",
        "feature-anonymous": feature_url,
    }
    for name, url in pages.items():
        page.goto(url)
        shot(page, output_dir, name)
    log_in(page, base, "alice")
    pages = {
        "home": f"{base}/",
        "search-text": f"{base}/search?q=capital",
        "search-key": f"{base}/search?q=L{node.layer}/{node.feature_index}",
        "my-graphs": f"{base}/me/graphs",
        "delete-confirm": f"{base}/me/graphs/{graph.pk}/delete",
        "profile": f"{base}/me/",
        "tokens": f"{base}/me/tokens",
        "upload": f"{base}/upload",
        "generate": f"{base}/generate?remix=synthetic/alices-graph",
        "feature": feature_url,
    }
    for name, url in pages.items():
        page.goto(url)
        shot(page, output_dir, name)
    open_explorer(page, f"{base}/graphs/synthetic/alices-graph")
    shot(page, output_dir, "explorer")
    page.click("#save-subgraph")
    shot(page, output_dir, "save-dialog")
    framed = browser.new_context(viewport={"width": 800, "height": 500})
    embed = framed.new_page()
    embed.goto(f"{base}/graphs/synthetic/alices-graph?embed=1")
    embed.wait_for_selector("#explorer[data-ready='1']", timeout=20_000)
    shot(embed, output_dir, "embed")
    framed.close()
    phone = browser.new_context(viewport={"width": 390, "height": 844})
    small = phone.new_page()
    for name, url in {"phone-home": f"{base}/", "phone-feature": feature_url}.items():
        small.goto(url)
        shot(small, output_dir, name)
    phone.close()
    assert not page.errors


def test_a_broken_upload_shows_the_validator_error_under_the_file(
    page: Any, live_server: Any, people: dict[str, User], tmp_path: Path, output_dir: Path
) -> None:
    import_synthetic(50, 100, slug="seed", with_dashboards=False)
    base = live_server.url
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"metadata": {"scan": "synthetic"}, "nodes": "nope"}))
    log_in(page, base, "alice")
    page.goto(f"{base}/upload")
    page.set_input_files("#id_file", str(broken))
    page.click("#upload-form button[type=submit]")
    errors = page.locator("#id_file-errors")
    errors.wait_for(state="visible")
    assert "links" in errors.inner_text()  # the validator's path inside the file
    assert page.locator("#upload-errors").is_visible()
    shot(page, output_dir, "upload-error")
    assert not Graph.objects.filter(owner__username="alice").exists()

    # A good file: the progress bar runs and the new graph opens.
    from tests.e2e.synthetic_graph import synthetic_graph

    good = tmp_path / "good.json"
    good.write_text(json.dumps(synthetic_graph(80, 200, slug="uploaded")))
    page.set_input_files("#id_file", str(good))
    page.fill("#id_title", "Uploaded <i>graph</i>")
    page.click("#upload-form button[type=submit]")
    # A private upload keeps the name asked for plus ten random letters (docs/api.md, Slugs).
    page.wait_for_url(re.compile(rf"{re.escape(base)}/graphs/synthetic/uploaded-[a-z]{{10}}$"))
    page.wait_for_selector("#explorer[data-ready='1']", timeout=20_000)
    slug = page.url.rsplit("/", 1)[1]
    assert Graph.objects.get(slug=slug).title == "Uploaded <i>graph</i>"


def test_alice_saves_and_shares_a_subgraph_bob_and_anonymous_open_it_charlie_gets_404(
    page: Any, browser: Any, live_server: Any, graph: Graph, output_dir: Path
) -> None:
    base = live_server.url
    url = f"{base}/graphs/synthetic/alices-graph"
    pinned = GraphNode.objects.filter(graph=graph).order_by("influence")[0].node_id
    log_in(page, base, "alice")
    open_explorer(page, f"{url}?pinnedIds={pinned}")
    page.click("#save-subgraph")
    page.fill("#sg-title", "<i>my</i> circuit")
    page.select_option("#sg-visibility", "unlisted")
    page.click("#save-dialog button[value=new]")
    page.wait_for_selector("#share-dialog[open]")
    link = page.input_value("#share-link")
    assert "subgraph=" in link
    assert "embed" not in link
    assert "embed=1" in page.input_value("#share-embed")
    shot(page, output_dir, "share-dialog")
    page.click("#share-dialog [data-close]")
    assert page.locator(".subgraph-list .subgraph-title").first.inner_text() == "<i>my</i> circuit"

    # Overwriting a version someone else replaced meanwhile: the 409 message.
    from graphs.models import Subgraph

    saved = Subgraph.objects.get(title="<i>my</i> circuit")
    Subgraph.objects.filter(pk=saved.pk).update(version=saved.version + 1)
    page.click("#save-subgraph")
    page.click("#save-dialog button[value=overwrite]")
    status = page.locator("#save-dialog .dialog-status")
    status.filter(has_text="newer version").wait_for()
    shot(page, output_dir, "save-conflict")
    page.click("#save-dialog button[value=cancel]")
    assert not page.locator("#save-dialog button[value=overwrite]").is_visible()

    for who in ("bob", None):
        context = browser.new_context()
        other = context.new_page()
        if who:
            log_in(other, base, who)
        other.goto(link)
        other.wait_for_selector("#explorer[data-ready='1']", timeout=20_000)
        assert other.evaluate(PINNED) == [pinned], who
        context.close()

    # Alice deletes it after confirming.
    page.once("dialog", lambda dialog: dialog.accept())
    page.click(".subgraph-list button.danger")
    page.locator(".subgraph-list .empty").wait_for()
    assert not Subgraph.objects.filter(pk=saved.pk).exists()

    Graph.objects.filter(pk=graph.pk).update(visibility=Visibility.PRIVATE)
    context = browser.new_context()
    charlie = context.new_page()
    log_in(charlie, base, "charlie")
    response = charlie.goto(url)
    assert response.status == 404
    assert "Nothing here" in charlie.content()
    context.close()


def _api_status(url: str, token: str) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def test_a_token_works_until_it_is_revoked(
    page: Any, live_server: Any, people: dict[str, User], output_dir: Path
) -> None:
    base = live_server.url
    log_in(page, base, "alice")
    page.goto(f"{base}/me/tokens")
    page.fill("#id_name", "notebook")
    page.click("form.narrow button[type=submit]")
    token = page.input_value("#new-token")
    assert token.startswith("ca_")
    assert _api_status(f"{base}/api/v1/tokens", token) == 200
    page.goto(f"{base}/me/tokens")
    assert token not in page.content()  # shown once
    page.click("text=Revoke")
    page.wait_for_selector("tr.revoked")
    assert _api_status(f"{base}/api/v1/tokens", token) == 401


def test_an_explanation_shows_on_the_feature_page_and_in_the_explorer(
    page: Any, live_server: Any, graph: Graph, output_dir: Path
) -> None:
    base = live_server.url
    Graph.objects.filter(pk=graph.pk).update(visibility=Visibility.PUBLIC)  # listed for bob
    node = GraphNode.objects.filter(graph=graph).order_by("influence").first()
    assert node is not None
    log_in(page, base, "bob")
    page.goto(f"{base}/features/synthetic/clt/{node.layer}/{node.feature_index}")
    page.fill("#id_text", "state <capitals> & their states")
    page.click(".explanation-form button[type=submit]")
    page.wait_for_selector("text=state <capitals> & their states")
    assert "bob" in page.locator(".explanations").inner_text()
    feature = Feature.objects.get(layer=node.layer, index=node.feature_index)
    assert feature.explanations.filter(author__username="bob").exists()
    # The feature page links to the explorer with this node selected.
    page.click(".graph-list a")
    page.wait_for_selector("#explorer[data-ready='1']", timeout=20_000)
    assert node.node_id in page.url
    page.get_by_text("state <capitals> & their states").first.wait_for(timeout=10_000)
    shot(page, output_dir, "explorer-explanation")


# ---- generate from the form with a real worker (tiny random Llama on CPU, as tests/jobs) ----

GENERATE_SLUG = "tiny-site"


@pytest.fixture(scope="module")
def site_worker(django_db_setup: None, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A real worker for the tiny model, and the media folder it writes artifacts to."""
    from tests.jobs.conftest import start_worker

    folder = tmp_path_factory.mktemp("site-worker")
    worker = start_worker([f"gpu.{GENERATE_SLUG}"], folder, MEDIA_ROOT=str(folder / "media"))
    yield worker, folder / "media"
    worker.stop()


@pytest.mark.services
def test_generating_from_the_form_shows_tokens_then_lands_on_the_new_graph(
    page: Any,
    live_server: Any,
    people: dict[str, User],
    site_worker: Any,
    settings: Any,
    tmp_path_factory: pytest.TempPathFactory,
    output_dir: Path,
) -> None:
    """Django's live server speaks WSGI only, so the page's websocket is refused here and it
    follows the job by polling GET /api/v1/jobs/{id} (the fallback); tests/jobs covers the
    websocket's events."""
    from tests.engine.builders import save_model, save_plt
    from tests.jobs.conftest import register_model

    settings.MEDIA_ROOT = str(site_worker[1])  # where the worker writes the artifact
    folder = tmp_path_factory.mktemp("site-pack")
    register_model(GENERATE_SLUG, (save_model("llama", folder / "model"), save_plt(folder / "t")))
    base = live_server.url
    log_in(page, base, "alice")
    page.goto(f"{base}/generate?model={GENERATE_SLUG}")
    page.fill("#id_prompt", "The cat sat")
    page.fill("#id_title", "<b>from</b> the form")
    # The first answer waits for the worker to import torch; a 503 says so and a retype retries.
    for _ in range(6):
        try:
            page.wait_for_selector("#token-list .token-chip", timeout=20_000)
            break
        except Exception:
            page.fill("#id_prompt", "The cat sat ")
    shot(page, output_dir, "generate-tokens")
    page.click("#generate-submit")
    page.wait_for_selector("#job-progress:not([hidden])")
    shot(page, output_dir, "generate-progress")
    page.wait_for_url(f"{base}/graphs/{GENERATE_SLUG}/**", timeout=240_000)
    page.wait_for_selector("#explorer[data-ready='1']", timeout=30_000)
    graph = Graph.objects.get(model__slug=GENERATE_SLUG)
    assert graph.owner == people["alice"]
    assert graph.title == "<b>from</b> the form"
    shot(page, output_dir, "generated-graph")


@pytest.fixture
def asgi_server(transactional_db: None, site_worker: Any) -> Iterator[str]:
    """The ASGI application (HTTP and websockets) under uvicorn in a child process on the test
    database: Django's live server is WSGI only, so this is how a browser reaches /ws/. A
    process, not a thread, so its database connections end with it and never linger to block
    dropping the test database."""
    import socket
    import subprocess
    import sys
    import time

    from tests.jobs.conftest import ROOT
    from tests.processes import child_env

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = site_worker[1].parent / f"uvicorn-{port}.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [
                sys.executable, "-m", "uvicorn", "webapp.asgi:application",
                "--host", "127.0.0.1", "--port", str(port),
                "--lifespan", "off", "--log-level", "warning",
            ],
            cwd=ROOT,
            env=child_env(MEDIA_ROOT=str(site_worker[1]), DEBUG="true"),
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://localhost:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=5):
                break
        except urllib.error.HTTPError:
            break  # 503 (no worker for the test broker's default queue) still means it answers
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail(f"uvicorn did not start:\n{log.read_text(errors='replace')}")
            time.sleep(0.2)
    yield url
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()


@pytest.mark.services
def test_the_generate_page_follows_the_job_over_its_websocket(
    page: Any,
    asgi_server: str,
    people: dict[str, User],
    site_worker: Any,
    settings: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    from tests.engine.builders import save_model, save_plt
    from tests.jobs.conftest import register_model

    settings.MEDIA_ROOT = str(site_worker[1])
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "localhost"]
    folder = tmp_path_factory.mktemp("ws-pack")
    register_model(GENERATE_SLUG, (save_model("llama", folder / "model"), save_plt(folder / "t")))
    frames: list[str] = []
    page.on(
        "websocket",
        lambda ws: ws.on("framereceived", lambda payload: frames.append(str(payload))),
    )
    base = asgi_server
    log_in(page, base, "alice")
    page.goto(f"{base}/generate?model={GENERATE_SLUG}")
    page.fill("#id_prompt", "The dog ran")
    page.click("#generate-submit")
    page.wait_for_url(f"{base}/graphs/{GENERATE_SLUG}/**", timeout=240_000)
    types = [json.loads(f).get("type") for f in frames if f.startswith("{")]
    assert types[0] == "state", types
    assert "done" in types, types
