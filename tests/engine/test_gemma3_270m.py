"""The engine on a real pretrained checkpoint, Gemma-3-270M, against circuit-tracer 0.5.0's graph
of the same prompt and seeded transcoders (tests/engine/gemma3_case.py). Runs where the
checkpoint is cached (`make gemma3-270m`); without it there is nothing to load."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from transformers import AutoTokenizer

from inference.engine import Graph, ReplacementModel, attribute, prune

from . import gemma3_case as case
from .golden_cases import EDGE_THRESHOLD, NODE_THRESHOLD

pytestmark = pytest.mark.optional_checkpoint(case.CHECKPOINT / "config.json", "make gemma3-270m")


@pytest.fixture(scope="module")
def gemma3(tmp_path_factory: pytest.TempPathFactory) -> ReplacementModel:
    transcoders = case.write_transcoders(Path(tmp_path_factory.mktemp("gemma3-tc")))
    return ReplacementModel.load(case.CHECKPOINT, transcoders / "config.yaml")


@pytest.fixture(scope="module")
def graph(gemma3: ReplacementModel) -> Graph:
    return attribute(
        case.PROMPT,
        gemma3,
        max_feature_nodes=case.MAX_FEATURE_NODES,
        batch_size=case.BATCH_SIZE,
    )


@pytest.fixture(scope="module")
def golden() -> dict[str, torch.Tensor]:
    return load_file(str(case.GOLDEN_FILE))


def _in_circuit_tracers_convention(graph: Graph) -> torch.Tensor:
    """Our graph's rows with the token columns divided by sqrt(d_model): Gemma-3 scales its
    embedding inside the embedding module, and circuit-tracer multiplies the gradient there by
    the unscaled row (docs/engine.md)."""
    rows = graph.target_rows.clone()
    n_tokens, start = graph.n_pos, graph.n_nodes - graph.n_logits - graph.n_pos
    rows[:, start : start + n_tokens] /= math.sqrt(case.D_MODEL)
    return rows


def test_the_prompt_gets_the_real_tokenizers_special_first_token(
    gemma3: ReplacementModel, graph: Graph, golden: dict[str, torch.Tensor]
) -> None:
    tokenizer = AutoTokenizer.from_pretrained(case.CHECKPOINT)
    ids = tokenizer(case.PROMPT)["input_ids"]  # the tokenizer's own default: <bos> first
    assert ids[0] == tokenizer.bos_token_id == 2
    assert graph.input_tokens.tolist() == ids
    assert graph.input_tokens.tolist() == golden["input_tokens"].tolist()


def test_the_embedding_is_scaled_by_sqrt_d_model_inside_its_module(
    gemma3: ReplacementModel,
) -> None:
    embed = gemma3.model.get_submodule("model.embed_tokens")
    ids = torch.tensor([[818, 5279]])
    with torch.no_grad():
        scaled = embed(ids)[0]
    weight = embed.weight
    assert isinstance(weight, torch.Tensor)
    raw = weight[ids[0]]
    assert torch.allclose(scaled, raw * math.sqrt(case.D_MODEL), rtol=1e-6, atol=0.0)


def test_features_and_targets_match_circuit_tracer(
    graph: Graph, golden: dict[str, torch.Tensor]
) -> None:
    assert torch.equal(graph.active_features, golden["active_features"].long())
    assert torch.equal(graph.selected_features, golden["selected_features"].long())
    assert torch.equal(graph.logit_tokens, golden["logit_tokens"].long())


def test_adjacency_matches_circuit_tracer_with_its_token_scale(
    graph: Graph, golden: dict[str, torch.Tensor]
) -> None:
    ours, theirs = _in_circuit_tracers_convention(graph), golden["adjacency_rows"]
    assert ours.shape == theirs.shape
    assert float((ours - theirs).abs().max()) <= 1e-4 * float(theirs.abs().max())


def test_pruned_nodes_and_edges_match_circuit_tracer(
    graph: Graph, golden: dict[str, torch.Tensor]
) -> None:
    converted = Graph(**{**vars(graph), "target_rows": _in_circuit_tracers_convention(graph)})
    pruned = prune(converted, node_threshold=NODE_THRESHOLD, edge_threshold=EDGE_THRESHOLD)
    kept = golden["node_mask"].bool()
    assert torch.equal(pruned.node_mask, kept)
    n = graph.n_nodes
    rows = torch.cat([torch.arange(graph.n_features), torch.arange(n - graph.n_logits, n)])
    edge_mask = torch.zeros(n, n, dtype=torch.bool)
    edge_mask[rows] = golden["edge_mask_rows"].bool()
    targets, sources = (edge_mask & kept[:, None] & kept[None, :]).nonzero(as_tuple=True)
    assert set(zip(pruned.edge_targets.tolist(), pruned.edge_sources.tolist(), strict=True)) == set(
        zip(targets.tolist(), sources.tolist(), strict=True)
    )
    with safe_open(str(case.GOLDEN_FILE), "pt") as file:
        metadata = file.metadata()
    assert pruned.replacement_score == pytest.approx(float(metadata["replacement"]), abs=1e-5)
    assert pruned.completeness_score == pytest.approx(float(metadata["completeness"]), abs=1e-5)
