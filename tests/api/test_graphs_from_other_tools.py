"""Graphs downloaded from Neuronpedia or written by circuit-tracer import with no hand steps: a
model or transcoder set the install lacks is made (reference-only) from the file's metadata, the
graph is filed under the set it names (a CLT graph under a CLT set), and it keeps its pruning
settings, pins, groups and clicked node. The files under other_tools/ follow those tools'
documented output (docs/graph-format.md): old error ids, comma-separated pins, ``info``."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from features.models import LanguageModel, TranscoderSet
from graphs.models import Graph
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

FILES = Path(__file__).parent / "other_tools"
NEURONPEDIA_PLT = "neuronpedia-gemma-2-2b-plt.json"
CIRCUIT_TRACER_CLT = "circuit-tracer-clt.json"


def upload(user: Any, name: str, **fields: Any) -> Any:
    body = {"file": io.BytesIO((FILES / name).read_bytes()), "visibility": "public", **fields}
    body["file"].name = name
    return client_for(user).post("/api/v1/graphs", body, format="multipart")


def test_a_neuronpedia_download_makes_its_model_and_set_and_opens_as_saved(alice: Any) -> None:
    response = upload(alice, NEURONPEDIA_PLT)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["model"], body["transcoder_set"]) == ("gemma-2-2b", "gemmascope-transcoder-16k")
    model = LanguageModel.objects.get(slug="gemma-2-2b")
    assert (model.n_layers, model.source) == (26, "")  # reference only: no weights
    tset = model.transcoder_sets.get()
    assert tset.kind == TranscoderSet.Kind.PLT
    assert model.default_transcoder_set == tset
    assert body["pruning_settings"] == {"node_threshold": 0.6, "edge_threshold": 0.85}
    document = json.loads(
        client_for(alice).get(body["urls"]["artifact"], HTTP_ACCEPT_ENCODING="").content
    )
    q = document["qParams"]
    assert q["pinnedIds"] == ["1_1204_4", "20_15_5"]
    assert q["supernodes"] == [["Texas", "1_1204_4", "7_9001_4"]]
    assert q["clickedId"] == "20_15_5"
    assert document["metadata"]["pruning_settings"]["edge_threshold"] == 0.85
    assert "3_-1_5" in {n["node_id"] for n in document["nodes"]}  # old error id rewritten


def test_a_circuit_tracer_clt_graph_goes_under_a_clt_set_not_the_per_layer_default(
    alice: Any,
) -> None:
    model = LanguageModel.objects.create(
        slug="mntss-clt-gemma-2-2b-426k", display_name="g", n_layers=26, d_model=8, vocab_size=9
    )
    plt = TranscoderSet.objects.create(model=model, slug="gemmascope", features_per_layer=16384)
    model.default_transcoder_set = plt
    model.save(update_fields=["default_transcoder_set"])
    response = upload(alice, CIRCUIT_TRACER_CLT)
    assert response.status_code == 201, response.json()
    graph = Graph.objects.get(slug=response.json()["slug"])
    assert graph.model == model
    assert graph.transcoder_set is not None
    assert graph.transcoder_set.slug == "mntss-clt-gemma-2-2b-426k"
    assert graph.transcoder_set.kind == TranscoderSet.Kind.CLT
    assert graph.pruning_settings["node_threshold"] == 0.7
    # The same set again on a second upload, not a second copy.
    assert upload(alice, CIRCUIT_TRACER_CLT).status_code == 201
    assert model.transcoder_sets.count() == 2


def test_a_clt_file_on_a_new_model_makes_both_reference_rows(alice: Any) -> None:
    response = upload(alice, CIRCUIT_TRACER_CLT)
    assert response.status_code == 201, response.json()
    tset = TranscoderSet.objects.get(slug="mntss-clt-gemma-2-2b-426k")
    assert tset.kind == TranscoderSet.Kind.CLT
    assert tset.model.slug == "mntss-clt-gemma-2-2b-426k"
    assert tset.features_per_layer >= 40112  # as wide as its widest feature index


def test_a_broken_file_from_another_tool_leaves_no_model_behind(alice: Any) -> None:
    document = json.loads((FILES / NEURONPEDIA_PLT).read_text())
    document["links"][0]["target"] = "99_1_1"
    body = {"file": io.BytesIO(json.dumps(document).encode())}
    body["file"].name = "broken.json"
    response = client_for(alice).post("/api/v1/graphs", body, format="multipart")
    assert response.status_code == 400
    assert "links[0].target" in response.json()["detail"]
    assert not LanguageModel.objects.exists()


def test_a_model_named_explicitly_must_exist(alice: Any) -> None:
    response = upload(alice, NEURONPEDIA_PLT, model="nope")
    assert response.status_code == 400
    assert "model" in response.json()["detail"]
    assert not LanguageModel.objects.exists()
