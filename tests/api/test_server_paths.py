"""No served or exported graph holds a server path: new graphs are cleaned when stored, graphs
stored before that are rewritten by migration 0003 (graphs/server_paths.py)."""

from __future__ import annotations

import importlib
import io
import json
from typing import Any

import pytest
from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.db.migrations.loader import MigrationLoader

from graphs import artifacts, server_paths
from graphs.models import Graph
from tests.api.conftest import graph_json, make_graph
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

SERVER_PATHS = (
    "/srv/atlas/var/models/tiny-llama",
    "/srv/atlas/transcoders/plt-16k/config.yaml",
    "C:\\Users\\lab\\transcoders\\layer_0.safetensors",
    "file:///home/lab/clt",
    "~/models/tiny",
)


def with_server_paths(document: dict[str, Any]) -> dict[str, Any]:
    """Metadata as the worker wrote it before the fix, plus paths a circuit-tracer file can hold."""
    document["metadata"].update(
        scan="/srv/atlas/var/models/tiny-llama",
        transcoder_list=["/srv/atlas/transcoders/plt-16k/config.yaml", "hf://org/repo/l0"],
        info={
            "model": "/srv/atlas/var/models/tiny-llama",
            "transcoder_set": "C:\\Users\\lab\\transcoders\\layer_0.safetensors",
            "source_urls": ["https://www.neuronpedia.org/tiny/plt", "file:///home/lab/clt"],
            "generator": {"name": "circuit-tracer", "home": "~/models/tiny"},
        },
    )
    # The user's own text is not a path to clean, even when it looks like one.
    document["metadata"]["prompt"] = "/srv/atlas is where"
    return document


def served(client: Any, graph: Graph) -> dict[str, Any]:
    url = f"/api/v1/graphs/{graph.model.slug}/{graph.slug}/artifact?download=1"
    response = client.get(url, HTTP_ACCEPT_ENCODING="")
    assert response.status_code == 200
    return json.loads(response.content)


def assert_no_server_path(document: dict[str, Any]) -> None:
    text = json.dumps({k: v for k, v in document["metadata"].items() if k != "prompt"})
    for path in SERVER_PATHS:
        assert json.dumps(path)[1:-1] not in text


def test_it_turns_paths_into_their_last_component_and_keeps_urls_and_the_prompt() -> None:
    metadata = with_server_paths(graph_json())["metadata"]
    clean = server_paths.scrub_metadata(metadata, model_slug="tiny")
    assert clean["info"]["model"] == "tiny"
    assert clean["scan"] == "tiny-llama"
    assert clean["transcoder_list"] == ["config.yaml", "hf://org/repo/l0"]
    assert clean["info"]["transcoder_set"] == "layer_0.safetensors"
    assert clean["info"]["source_urls"] == ["https://www.neuronpedia.org/tiny/plt", "clt"]
    assert clean["info"]["generator"]["home"] == "tiny"
    assert clean["prompt"] == "/srv/atlas is where"
    assert metadata["info"]["model"].startswith("/srv/")  # the input is left as it was


def test_an_uploaded_graph_with_server_paths_is_filed_and_served_without_them(
    alice: Any, model: Any
) -> None:
    client = client_for(alice)
    body = json.dumps(with_server_paths(graph_json(slug="paths"))).encode()
    upload = io.BytesIO(body)
    upload.name = "graph.json"
    response = client.post(
        "/api/v1/graphs", {"file": upload, "visibility": "public"}, format="multipart"
    )
    assert response.status_code == 201, response.json()
    graph = Graph.objects.select_related("model", "transcoder_set").get(slug="paths")
    # Named from the file's cleaned metadata: no path became a slug.
    assert graph.transcoder_set is not None
    assert (graph.model.slug, graph.transcoder_set.slug) == ("tiny-llama", "layer_0safetensors")
    document = served(client, graph)
    assert_no_server_path(document)
    assert document["metadata"]["info"]["model"] == "tiny-llama"
    assert document["metadata"]["prompt"] == "/srv/atlas is where"


def store_as_before_the_fix(graph: Graph) -> str:
    """Point ``graph`` at an artifact written the way graphs were stored before the fix."""
    document = with_server_paths(artifacts.read_document(graph.artifact_name))
    stored = artifacts.write(document, model_slug=graph.model.slug, slug=graph.slug)
    old = graph.artifact_name
    Graph.objects.filter(pk=graph.pk).update(
        artifact=stored.name,
        artifact_sha256=stored.sha256,
        artifact_bytes=stored.raw_bytes,
        artifact_gzip_bytes=stored.gzip_bytes,
    )
    artifacts.delete(old)
    return stored.name


def test_graphs_stored_before_the_fix_are_rewritten_without_server_paths(
    alice: Any, model: Any, django_capture_on_commit_callbacks: Any
) -> None:
    leaky = make_graph(alice, slug="leaky")
    clean = make_graph(alice, slug="clean")
    leaky_file = store_as_before_the_fix(leaky)
    clean_before = Graph.objects.get(pk=clean.pk)
    with django_capture_on_commit_callbacks(execute=True):
        assert server_paths.rewrite_stored(Graph) == 1
    leaky.refresh_from_db()
    assert leaky.artifact_name != leaky_file
    assert not default_storage.exists(leaky_file)  # the old file goes once the rows commit
    document = served(client_for(alice), leaky)
    assert_no_server_path(document)
    assert document["metadata"]["prompt"] == "/srv/atlas is where"
    assert len(document["nodes"]) == leaky.n_nodes
    assert leaky.artifact_bytes == len(artifacts.encode(document))
    clean.refresh_from_db()
    assert (clean.artifact_name, clean.etag) == (clean_before.artifact_name, clean_before.etag)


def test_a_rewrite_that_fails_leaves_every_graph_on_its_old_file(
    alice: Any, model: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = make_graph(alice, slug="first"), make_graph(alice, slug="second")
    old_files = {g.pk: store_as_before_the_fix(g) for g in (first, second)}
    write = artifacts.write
    calls: list[str] = []

    def write_then_fail(document: dict[str, Any], **names: str) -> artifacts.StoredArtifact:
        if calls:
            raise OSError("disk full")
        stored = write(document, **names)
        calls.append(stored.name)
        return stored

    monkeypatch.setattr(artifacts, "write", write_then_fail)
    with pytest.raises(OSError, match="disk full"), transaction.atomic():
        server_paths.rewrite_stored(Graph)
    assert not default_storage.exists(calls[0])  # the one new file is gone again
    for pk, name in old_files.items():
        graph = Graph.objects.get(pk=pk)
        assert graph.artifact_name == name
        assert default_storage.exists(name)


def test_the_migration_rewrites_through_the_historical_model(
    alice: Any, model: Any, django_capture_on_commit_callbacks: Any
) -> None:
    graph = make_graph(alice, slug="old")
    store_as_before_the_fix(graph)
    state = MigrationLoader(connection).project_state(("graphs", "0003_scrub_server_paths"))
    migration = importlib.import_module("graphs.migrations.0003_scrub_server_paths")
    with django_capture_on_commit_callbacks(execute=True):
        migration.scrub(state.apps, None)
    graph.refresh_from_db()
    assert_no_server_path(artifacts.read_document(graph.artifact_name))


@pytest.mark.parametrize(
    ("source", "shown"),
    [
        ("/srv/atlas/var/models/tiny-llama", "tiny-llama"),
        ("C:\\models\\tiny-llama\\", "tiny-llama"),
        ("google/gemma-2-2b", "google/gemma-2-2b"),
        ("", ""),
    ],
)
def test_the_models_api_names_a_server_folder_by_its_last_part_and_keeps_hub_ids(
    model: Any, source: str, shown: str
) -> None:
    model.source = source
    model.save(update_fields=["source"])
    for path in ("/api/v1/models", f"/api/v1/models/{model.slug}"):
        body = client_for(None).get(path).json()
        listed = body["results"][0] if "results" in body else body
        assert listed["source"] == shown
