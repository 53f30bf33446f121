"""The graph commands a demo loader and admins use, and the service the generation worker calls."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from contract.graph_json import validate_graph
from graphs import services
from graphs.models import Graph, Subgraph
from tests.api.conftest import N_LAYERS, graph_json

pytestmark = pytest.mark.django_db


def test_import_graph_reads_gzipped_json_and_reruns_with_replace(
    alice: Any, model: Any, tmp_path: Path
) -> None:
    path = tmp_path / "cat.json.gz"
    path.write_bytes(gzip.compress(json.dumps(graph_json()).encode()))
    out = io.StringIO()
    call_command("import_graph", path, slug="demo-cat", owner="alice", featured=True, stdout=out)
    assert "7 nodes" in out.getvalue()
    graph = Graph.objects.get()
    assert (graph.slug, graph.owner, graph.featured, graph.visibility) == (
        "demo-cat",
        alice,
        True,
        "public",
    )
    assert graph.source == Graph.Source.IMPORTED
    call_command("import_graph", path, slug="demo-cat", replace=True, stdout=io.StringIO())
    assert Graph.objects.count() == 1


def test_import_graph_lists_every_bad_field(model: Any, tmp_path: Path) -> None:
    document = graph_json()
    document["nodes"][3]["ctx_idx"] = "x"
    document["nodes"][4]["layer"] = []
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(document))
    with pytest.raises(CommandError) as caught:
        call_command("import_graph", path, stdout=io.StringIO())
    assert "nodes[3].ctx_idx" in str(caught.value)
    assert "nodes[4].layer" in str(caught.value)


def test_export_graph_writes_the_schema_with_a_subgraphs_annotations(
    alice: Any, model: Any, tmp_path: Path
) -> None:
    path = tmp_path / "cat.json"
    path.write_text(json.dumps(graph_json()))
    call_command("import_graph", path, slug="cat", stdout=io.StringIO())
    graph = Graph.objects.get()
    sub = Subgraph.objects.create(
        graph=graph, owner=alice, title="t", pinned_ids=["0_7_1"], node_labels={"0_7_1": "x"}
    )
    out = tmp_path / "out.json"
    call_command(
        "export_graph",
        "tiny",
        "cat",
        output=str(out),
        subgraph=sub.share_slug,
        stderr=io.StringIO(),
    )
    document = json.loads(out.read_text())
    assert document["qParams"]["pinnedIds"] == ["0_7_1"]
    assert next(n for n in document["nodes"] if n["node_id"] == "0_7_1")["clerp"] == "x"
    # What we export, we import: the round trip validates.
    assert validate_graph(document, n_layers=N_LAYERS, limits=services.limits()).n_nodes == 7


def test_the_worker_path_stores_settings_and_scores(alice: Any, model: Any, tset: Any) -> None:
    normalised = validate_graph(graph_json(), n_layers=N_LAYERS, limits=services.limits())
    graph = services.store_graph(
        normalised,
        model=model,
        transcoder_set=tset,
        slug=services.free_slug(model, "The cat!"),
        owner=alice,
        source=Graph.Source.GENERATED,
        scores={"replacement_score": 0.7},
        generation_settings={"max_n_logits": 10},
        pruning_settings={"node_threshold": 0.8, "edge_threshold": 0.98},
        target={"logit_diff": [" mat", " rug"]},
    )
    assert graph.slug == "the-cat"
    assert graph.n_features == 2
    assert graph.feature_nodes.count() == 2
    assert graph.pruning_settings["edge_threshold"] == 0.98
    assert services.free_slug(model, "The cat!") == "the-cat-2"
