"""Agreement with circuit-tracer 0.5.0 on every run: its graphs of two tiny seeded models were
written once by tests/engine/golden/make_golden.py; ours must match them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from inference.engine import Graph, ReplacementModel, attribute, prune

from .golden_cases import CASES, EDGE_THRESHOLD, NODE_THRESHOLD, Case


def _feature_and_logit_rows(graph: Graph) -> torch.Tensor:
    n = graph.n_nodes
    return torch.cat([torch.arange(graph.n_features), torch.arange(n - graph.n_logits, n)])


@pytest.fixture(scope="module", params=CASES, ids=lambda case: case.name)
def case_graph(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Case, Graph, dict[str, torch.Tensor]]:
    case: Case = request.param
    model_dir, transcoders = case.write_files(Path(tmp_path_factory.mktemp(case.name)))
    rm = ReplacementModel.load(model_dir, transcoders / "config.yaml")
    graph = attribute(
        list(case.tokens),
        rm,
        max_feature_nodes=case.max_feature_nodes,
        batch_size=case.batch_size,
    )
    return case, graph, load_file(str(case.path))


def test_the_golden_files_were_made_by_circuit_tracer() -> None:
    for case in CASES:
        with safe_open(str(case.path), "pt") as golden:
            assert golden.metadata()["made_by"].startswith("circuit-tracer 0.5.0")


def test_active_and_selected_features_and_targets_match_circuit_tracer(
    case_graph: tuple[Case, Graph, dict[str, torch.Tensor]],
) -> None:
    case, graph, golden = case_graph
    assert graph.input_tokens.tolist() == list(case.tokens)
    assert torch.equal(graph.active_features, golden["active_features"].long())
    assert torch.equal(graph.selected_features, golden["selected_features"].long())
    assert torch.equal(graph.logit_tokens, golden["logit_tokens"].long())


def test_adjacency_matches_circuit_tracer_to_float_tolerance(
    case_graph: tuple[Case, Graph, dict[str, torch.Tensor]],
) -> None:
    _, graph, golden = case_graph
    # The graph holds only the rows that can be non-zero: the features', then the logits'.
    assert torch.equal(graph.row_nodes, _feature_and_logit_rows(graph))
    ours, theirs = graph.target_rows, golden["adjacency_rows"]
    assert ours.shape == theirs.shape
    scale = float(theirs.abs().max())
    assert float((ours - theirs).abs().max()) <= 1e-5 * scale


def test_pruned_nodes_and_edges_match_circuit_tracer(
    case_graph: tuple[Case, Graph, dict[str, torch.Tensor]],
) -> None:
    case, graph, golden = case_graph
    pruned = prune(graph, node_threshold=NODE_THRESHOLD, edge_threshold=EDGE_THRESHOLD)
    assert torch.equal(pruned.node_mask, golden["node_mask"].bool())
    rows = _feature_and_logit_rows(graph)
    kept = golden["node_mask"].bool()
    edge_mask = torch.zeros(graph.n_nodes, graph.n_nodes, dtype=torch.bool)
    edge_mask[rows] = golden["edge_mask_rows"].bool()
    # circuit-tracer's edge mask also holds edges to nodes it then drops; its JSON does not.
    targets, sources = (edge_mask & kept[:, None] & kept[None, :]).nonzero(as_tuple=True)
    theirs = set(zip(targets.tolist(), sources.tolist(), strict=True))
    ours = set(zip(pruned.edge_targets.tolist(), pruned.edge_sources.tolist(), strict=True))
    assert ours == theirs
    assert len(ours) > 0
    with safe_open(str(case.path), "pt") as file:
        metadata = file.metadata()
    assert pruned.replacement_score == pytest.approx(float(metadata["replacement"]), abs=1e-6)
    assert pruned.completeness_score == pytest.approx(float(metadata["completeness"]), abs=1e-6)
