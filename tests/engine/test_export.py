"""JSON (schema v1) and raw safetensors exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from contract.graph_json import validate_graph
from contract.node_ids import cantor_pair
from inference.engine import (
    Graph,
    GraphFormatError,
    graph_to_json,
    load_raw,
    prune,
    save_raw,
)


def test_json_round_trip_keeps_every_kept_node_and_link(llama_graph: Graph) -> None:
    pruned = prune(llama_graph, node_threshold=0.8, edge_threshold=0.98)
    data = json.loads(json.dumps(graph_to_json(llama_graph, pruned, slug="g1")))
    data = validate_graph(data).document
    ids = {n["node_id"] for n in data["nodes"]}
    n_tokens = llama_graph.n_pos
    assert sum(n["feature_type"] == "embedding" for n in data["nodes"]) == n_tokens
    assert sum(n["feature_type"] == "logit" for n in data["nodes"]) == llama_graph.n_logits
    # every link is an edge of the adjacency with its exact weight
    index = _node_index(llama_graph)
    for link in data["links"]:
        assert link["source"] in ids
        assert link["target"] in ids
        weight = llama_graph.adjacency[index[link["target"]], index[link["source"]]]
        assert link["weight"] == pytest.approx(float(weight))
    assert len(data["links"]) == len(pruned.edge_targets)
    meta = data["metadata"]
    assert meta["schema_version"] == 1
    assert meta["slug"] == "g1"
    assert meta["scores"]["replacement_score"] == pytest.approx(pruned.replacement_score)
    assert meta["pruning_settings"] == {"node_threshold": 0.8, "edge_threshold": 0.98}


def _node_index(graph: Graph) -> dict[str, int]:
    index = {}
    for k in range(graph.n_features):
        layer, pos, feat = graph.active_features[graph.selected_features[k]].tolist()
        index[f"{layer}_{feat}_{pos}"] = k
    for layer in range(graph.n_layers):
        for pos in range(graph.n_pos):
            index[f"{layer}_-1_{pos}"] = graph.error_offset + layer * graph.n_pos + pos
    for pos, tok in enumerate(graph.input_tokens.tolist()):
        index[f"E_{tok}_{pos}"] = graph.token_offset + pos
    for i, tok in enumerate(graph.logit_tokens.tolist()):
        index[f"{graph.n_layers + 1}_{tok}_{graph.n_pos - 1}"] = graph.logit_offset + i
    return index


def test_node_ids_follow_the_documented_formats(llama_graph: Graph) -> None:
    data = graph_to_json(llama_graph, slug="g", node_threshold=1.0, edge_threshold=1.0)
    last = llama_graph.n_pos - 1
    for node in data["nodes"]:
        kind, node_id = node["feature_type"], node["node_id"]
        if kind == "cross layer transcoder":
            layer, feat, pos = map(int, node_id.split("_"))
            assert node["feature"] == cantor_pair(layer, feat)
            assert node["ctx_idx"] == pos
        elif kind == "mlp reconstruction error":
            assert re.fullmatch(rf"{node['layer']}_-1_{node['ctx_idx']}", node_id)
        elif kind == "embedding":
            assert re.fullmatch(rf"E_\d+_{node['ctx_idx']}", node_id)
        else:
            assert node_id == f"{llama_graph.n_layers + 1}_{node['feature']}_{last}"
    targets = [n for n in data["nodes"] if n["is_target_logit"]]
    assert len(targets) == 1
    assert targets[0]["feature"] == int(llama_graph.logit_tokens[0])


def test_cantor_pairing_is_the_neuronpedia_feature_number() -> None:
    assert [cantor_pair(0, 0), cantor_pair(1, 0), cantor_pair(0, 1), cantor_pair(2, 3)] == [
        0,
        1,
        2,
        18,
    ]


def test_validation_rewrites_legacy_error_ids() -> None:
    data = {
        "metadata": {"slug": "s", "prompt": "a b", "prompt_tokens": ["a", "b"]},
        "nodes": [
            {
                "node_id": "0_3_1",
                "feature_type": "mlp reconstruction error",
                "layer": "3",
                "ctx_idx": 1,
            },
            {"node_id": "E_5_0", "feature_type": "embedding", "ctx_idx": 0},
        ],
        "links": [{"source": "E_5_0", "target": "0_3_1", "weight": 0.5}],
    }
    out = validate_graph(data).document
    assert out["nodes"][0]["node_id"] == "3_-1_1"
    assert out["links"][0]["target"] == "3_-1_1"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("links"), "links"),
        (lambda d: d["nodes"][0].update(feature_type="mystery"), "feature_type"),
        (lambda d: d["nodes"][0].update(node_id="E_x_0"), "does not fit"),
        (
            lambda d: d["links"].append({"source": "nope", "target": "E_5_0", "weight": 1}),
            "not a node",
        ),
    ],
)
def test_validation_names_the_first_problem(mutate: object, message: str) -> None:
    data = {
        "metadata": {"slug": "s", "prompt": "a", "prompt_tokens": ["a"]},
        "nodes": [{"node_id": "E_5_0", "feature_type": "embedding", "ctx_idx": 0}],
        "links": [],
    }
    mutate(data)  # type: ignore[operator]
    with pytest.raises(GraphFormatError, match=message):
        validate_graph(data)


def test_raw_safetensors_round_trip(llama_graph: Graph, tmp_path: Path) -> None:
    save_raw(llama_graph, tmp_path / "g.safetensors")
    loaded = load_raw(tmp_path / "g.safetensors")
    for name in ("target_rows", "active_features", "selected_features", "activation_values"):
        assert torch.equal(getattr(loaded, name), getattr(llama_graph, name))
    assert loaded.logit_labels == llama_graph.logit_labels
    assert loaded.n_layers == llama_graph.n_layers


def test_a_raw_file_of_the_first_version_loads_its_square_adjacency_as_rows(
    llama_graph: Graph, tmp_path: Path
) -> None:
    # Version 1 wrote the (N, N) adjacency: the same file, as it wrote it.
    save_raw(llama_graph, tmp_path / "g.safetensors")
    tensors = load_file(str(tmp_path / "g.safetensors"))
    with safe_open(str(tmp_path / "g.safetensors"), framework="pt") as f:
        metadata = f.metadata()
    del tensors["target_rows"]
    tensors["adjacency"] = llama_graph.adjacency
    save_file(
        tensors,
        str(tmp_path / "v1.safetensors"),
        metadata={**metadata, "format": "circuit-atlas-raw/1"},
    )
    loaded = load_raw(tmp_path / "v1.safetensors")
    assert torch.equal(loaded.target_rows, llama_graph.target_rows)
    assert prune(loaded).edge_weights.tolist() == prune(llama_graph).edge_weights.tolist()
