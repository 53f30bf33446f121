"""The schema-v1 validator of contract.graph_json: what it accepts, rewrites and refuses."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from contract.graph_json import (
    GraphFormatError,
    GraphValidationError,
    Limits,
    validate_graph,
)
from contract.node_ids import cantor_pair
from tests.e2e.synthetic_graph import synthetic_graph


def _small() -> dict[str, Any]:
    return {
        "metadata": {"slug": "s", "prompt": "a b", "prompt_tokens": ["a", "b"]},
        "qParams": {"pinnedIds": ["0_2_1"], "supernodes": [["group", "0_2_1", "E_5_0"]]},
        "nodes": [
            {"node_id": "E_5_0", "feature_type": "embedding", "layer": "E", "ctx_idx": 0},
            {"node_id": "1_9_1", "feature_type": "transcoder", "layer": "1", "ctx_idx": 1},
            {
                "node_id": "0_2_1",
                "feature_type": "mlp reconstruction error",
                "layer": "2",
                "ctx_idx": 1,
            },
            {"node_id": "4_17_1", "feature_type": "logit", "layer": "4", "ctx_idx": 1},
        ],
        "links": [
            {"source": "E_5_0", "target": "1_9_1", "weight": 0.5},
            {"source": "0_2_1", "target": "4_17_1", "weight": -0.25},
        ],
    }


def test_it_accepts_a_graph_as_the_explorer_gets_it() -> None:
    document = synthetic_graph(200, 600, n_layers=6)
    graph = validate_graph(document, n_layers=6)
    assert graph.n_nodes == len(document["nodes"])
    assert graph.n_links == len(document["links"])
    assert graph.metadata["schema_version"] == 1


def test_the_older_error_id_is_rewritten_everywhere() -> None:
    document = validate_graph(_small(), n_layers=3).document
    error = document["nodes"][2]
    assert (error["node_id"], error["feature"]) == ("2_-1_1", -1)
    assert document["links"][1]["source"] == "2_-1_1"
    assert document["qParams"]["pinnedIds"] == ["2_-1_1"]
    assert document["qParams"]["supernodes"] == [["group", "2_-1_1", "E_5_0"]]


def test_a_feature_is_numbered_by_the_cantor_pairing() -> None:
    graph = validate_graph(_small(), n_layers=3)
    assert graph.document["nodes"][1]["feature"] == cantor_pair(1, 9)
    assert [(f.layer, f.feature_index, f.position) for f in graph.feature_nodes] == [(1, 9, 1)]


@pytest.mark.parametrize(
    ("node", "change", "path", "message"),
    [
        (0, {"node_id": "E_x_0"}, "nodes[0].node_id", "does not fit feature_type 'embedding'"),
        (1, {"node_id": "2_9_1"}, "nodes[1].node_id", "must be {layer}_{index}_{pos}"),
        (1, {"node_id": "1_9_0"}, "nodes[1].node_id", "must be {layer}_{index}_{pos}"),
        (2, {"node_id": "2_5_1"}, "nodes[2].node_id", "must be 2_-1_1 (or the older 0_2_1)"),
        (3, {"node_id": "4_-1_1"}, "nodes[3].node_id", "does not fit feature_type 'logit'"),
        (3, {"layer": "3", "node_id": "3_17_1"}, "nodes[3].layer", "must be 4 (n_layers + 1)"),
        (1, {"ctx_idx": 2}, "nodes[1].ctx_idx", "between 0 and 1"),
        (1, {"feature_type": "mystery"}, "nodes[1].feature_type", "expected one of"),
        (1, {"influence": "big"}, "nodes[1].influence", "finite number"),
    ],
)
def test_a_bad_node_is_refused_by_its_field(
    node: int, change: dict[str, Any], path: str, message: str
) -> None:
    document = _small()
    document["nodes"][node].update(change)
    with pytest.raises(GraphValidationError) as caught:
        validate_graph(document, n_layers=3)
    assert path in caught.value.errors
    assert message in caught.value.errors[path]


def test_links_must_join_nodes_and_ids_must_be_unique() -> None:
    document = _small()
    document["links"].append({"source": "nope", "target": "E_5_0", "weight": 1.0})
    document["nodes"].append(copy.deepcopy(document["nodes"][0]))
    with pytest.raises(GraphValidationError) as caught:
        validate_graph(document)
    assert caught.value.errors == {"nodes[4].node_id": "duplicate node id 'E_5_0'"}
    document["nodes"].pop()
    with pytest.raises(GraphValidationError) as caught:
        validate_graph(document)
    assert caught.value.errors == {"links[2].source": "'nope' is not a node"}


def test_sizes_are_bounded_before_any_node_is_read() -> None:
    document = _small()
    document["nodes"][0] = "not even an object"
    with pytest.raises(GraphValidationError) as caught:
        validate_graph(document, limits=Limits(max_nodes=3))
    assert caught.value.errors == {"nodes": "4 nodes; the limit is 3"}


def test_a_graph_of_the_planners_longest_prompt_is_accepted_and_one_more_token_is_not() -> None:
    document = _small()
    document["metadata"]["prompt_tokens"] = ["a"] * 8192
    validate_graph(document)
    document["metadata"]["prompt_tokens"] = ["a"] * 8193
    with pytest.raises(GraphValidationError) as caught:
        validate_graph(document)
    assert caught.value.errors == {"metadata.prompt_tokens": "more than 8192 tokens"}


def test_a_validation_error_is_a_format_error() -> None:
    with pytest.raises(GraphFormatError, match="links: required"):
        validate_graph({"metadata": {}, "nodes": []})
