"""Supernode suggestions on graphs whose groups are known by construction."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

from analysis import supernodes
from analysis.supernodes import FeatureText, Settings, suggest

TOKENS = ("<bos>", "The", " cat", " sat")


def node(node_id: str, kind: str = "cross layer transcoder") -> dict[str, Any]:
    layer, _, pos = node_id.split("_") if not node_id.startswith("E") else ("0", "", "0")
    return {"node_id": node_id, "feature_type": kind, "layer": layer, "ctx_idx": int(pos)}


def graph(features: list[str], links: list[tuple[str, str, float]]) -> tuple[list, list]:
    nodes = [
        {"node_id": "E_1_1", "feature_type": "embedding", "layer": "E", "ctx_idx": 1},
        {"node_id": "E_2_2", "feature_type": "embedding", "layer": "E", "ctx_idx": 2},
        {"node_id": "E_3_3", "feature_type": "embedding", "layer": "E", "ctx_idx": 3},
        {"node_id": "5_9_3", "feature_type": "logit", "layer": "5", "ctx_idx": 3},
        {"node_id": "5_8_3", "feature_type": "logit", "layer": "5", "ctx_idx": 3},
        *(node(f) for f in features),
    ]
    return nodes, [{"source": s, "target": t, "weight": w} for s, t, w in links]


def two_roles() -> tuple[list, list]:
    """At " sat": a, b read " cat" and push logit 9 up; c, d read "The" and push logit 8 up."""
    return graph(
        ["0_1_3", "0_2_3", "1_3_3", "1_4_3"],
        [
            ("E_2_2", "0_1_3", 2.0),
            ("E_2_2", "0_2_3", 1.5),
            ("E_1_1", "1_3_3", 2.0),
            ("E_1_1", "1_4_3", 1.0),
            ("0_1_3", "5_9_3", 1.0),
            ("0_2_3", "5_9_3", 0.8),
            ("1_3_3", "5_8_3", 1.0),
            ("1_4_3", "5_8_3", 1.2),
        ],
    )


def groups(found: list[supernodes.Suggestion]) -> set[frozenset[str]]:
    return {frozenset(s.members) for s in found}


def test_features_with_the_same_sources_and_targets_are_grouped() -> None:
    nodes, links = two_roles()
    found = suggest(nodes, links, tokens=TOKENS)
    assert groups(found) == {frozenset({"0_1_3", "0_2_3"}), frozenset({"1_3_3", "1_4_3"})}
    for s in found:
        assert 0.9 < s.confidence <= 1.0
        assert s.evidence["edges_in"] == pytest.approx(1.0)
        assert s.evidence["decoder"] is None  # no decoders given
        assert s.positions == (3, 3)


def test_only_the_given_node_ids_are_grouped() -> None:
    nodes, links = two_roles()
    found = suggest(nodes, links, node_ids=["0_1_3", "0_2_3", "1_3_3"])
    assert groups(found) == {frozenset({"0_1_3", "0_2_3"})}
    assert suggest(nodes, links, node_ids=["0_1_3"]) == []


def test_opposite_signs_are_not_one_role() -> None:
    nodes, links = graph(
        ["0_1_3", "0_2_3"],
        [("E_2_2", "0_1_3", 1.0), ("E_2_2", "0_2_3", -1.0)],
    )
    assert suggest(nodes, links) == []


def test_layers_far_apart_need_stronger_evidence() -> None:
    nodes, links = graph(
        ["0_1_3", "3_2_3"],
        [("E_2_2", "0_1_3", 1.0), ("E_2_2", "3_2_3", 1.0), ("E_1_1", "3_2_3", 1.0)],
    )
    # Cosine 0.71 between their inputs; two layers beyond the first cost 2 × layer_penalty.
    assert suggest(nodes, links, settings=Settings(threshold=0.6, layer_penalty=0.0))
    assert suggest(nodes, links, settings=Settings(threshold=0.6, layer_penalty=0.1)) == []


def test_decoder_directions_group_features_the_edges_cannot_tell_apart() -> None:
    nodes, links = graph(["0_1_3", "0_2_3", "0_3_3", "0_4_3"], [])
    rng = np.random.default_rng(1)
    u, v = rng.standard_normal(64), rng.standard_normal(64)
    decoders = {(0, 1): u, (0, 2): u + 0.01, (0, 3): v, (0, 4): v * 2}
    found = suggest(nodes, links, decoders=decoders)
    assert groups(found) == {frozenset({"0_1_3", "0_2_3"}), frozenset({"0_3_3", "0_4_3"})}
    assert all(s.evidence["decoder"] == pytest.approx(1.0, abs=1e-3) for s in found)


def test_names_come_from_shared_logits_then_explanations_then_place() -> None:
    nodes, links = two_roles()
    texts = {
        (0, 1): FeatureText("fires on cats", (" Tom", " Felix", " dog")),
        (0, 2): FeatureText("fires on cats; also dogs", (" Felix", " Tom")),
        (1, 3): FeatureText("fires on the article"),
        (1, 4): FeatureText("", ()),
    }
    names = {frozenset(s.members): s.name for s in suggest(nodes, links, texts=texts)}
    assert names[frozenset({"0_1_3", "0_2_3"})] == "says Tom / Felix"
    assert names[frozenset({"1_3_3", "1_4_3"})] == "fires on the article"
    assert {s.name for s in suggest(nodes, links, tokens=TOKENS)} == {
        "L0 at “sat” features",
        "L1 at “sat” features",
    }


def test_explanations_saying_the_same_thing_group_features() -> None:
    nodes, links = graph(["0_1_3", "0_2_3", "0_3_3", "0_4_3"], [])
    texts = {
        (0, 1): FeatureText("the capital city of a country"),
        (0, 2): FeatureText("capital city of a country"),
        (0, 3): FeatureText("names of people after gave"),
        (0, 4): FeatureText("people names after gave"),
    }
    found = suggest(nodes, links, texts=texts)
    assert groups(found) == {frozenset({"0_1_3", "0_2_3"}), frozenset({"0_3_3", "0_4_3"})}


def test_groups_at_neighbouring_positions_join_when_similar_enough() -> None:
    nodes, links = graph(
        ["0_1_2", "0_2_2", "0_3_3", "0_4_3"],
        [(f, "5_9_3", 1.0) for f in ("0_1_2", "0_2_2", "0_3_3", "0_4_3")]
        + [(e, f, 1.0) for e in ("E_2_2",) for f in ("0_1_2", "0_2_2", "0_3_3", "0_4_3")],
    )
    assert groups(suggest(nodes, links)) == {frozenset({"0_1_2", "0_2_2", "0_3_3", "0_4_3"})}
    strict = Settings(position_penalty=0.9)
    assert groups(suggest(nodes, links, settings=strict)) == {
        frozenset({"0_1_2", "0_2_2"}),
        frozenset({"0_3_3", "0_4_3"}),
    }


def test_sketched_profiles_give_the_groups_exact_ones_give(monkeypatch: Any) -> None:
    rng = np.random.default_rng(0)
    features = [f"0_{i}_3" for i in range(40)]
    links = []
    for i, f in enumerate(features):
        role = i % 4  # four roles, each reading its own embeddings and feeding its own logit
        for k in range(5):
            links.append((f"E_{role * 5 + k}_{k}", f, 1.0 + 0.1 * rng.standard_normal()))
        links.append((f, f"5_{role}_3", 1.0))
    nodes = [node(f) for f in features] + [
        {"node_id": f"E_{t}_{t % 5}", "feature_type": "embedding", "ctx_idx": t % 5}
        for t in range(20)
    ]
    nodes += [{"node_id": f"5_{r}_3", "feature_type": "logit", "ctx_idx": 3} for r in range(4)]
    body = [{"source": s, "target": t, "weight": w} for s, t, w in links]
    exact = groups(suggest(nodes, body))
    monkeypatch.setattr(supernodes, "EXACT_DIM", 10)
    assert groups(suggest(nodes, body)) == exact
    assert len(exact) == 4


def test_wide_decoders_are_sketched_without_changing_the_groups(monkeypatch: Any) -> None:
    nodes, links = graph([f"0_{i}_3" for i in range(12)], [])
    rng = np.random.default_rng(2)
    centres = rng.standard_normal((3, 2304))
    decoders = {(0, i): centres[i % 3] + 0.3 * rng.standard_normal(2304) for i in range(12)}
    sketched = groups(suggest(nodes, links, decoders=decoders))
    assert sketched == {frozenset(f"0_{i}_3" for i in range(k, 12, 3)) for k in range(3)}
    monkeypatch.setattr(supernodes, "EXACT_DIM", 4096)
    assert groups(suggest(nodes, links, decoders=decoders)) == sketched


def greedy_average_linkage(sim: np.ndarray, threshold: float) -> set[frozenset[int]]:
    """The textbook O(n³) version: merge the best pair of groups while its mean is high enough."""
    clusters = [[i] for i in range(len(sim))]
    while len(clusters) > 1:
        best, pair = -np.inf, (0, 0)
        for a, b in itertools.combinations(range(len(clusters)), 2):
            mean = sim[np.ix_(clusters[a], clusters[b])].mean()
            if mean > best:
                best, pair = mean, (a, b)
        if best < threshold:
            break
        a, b = pair
        clusters[a] += clusters.pop(b)
    return {frozenset(c) for c in clusters}


@pytest.mark.parametrize("seed", range(8))
def test_nearest_neighbour_chains_agree_with_textbook_average_linkage(seed: int) -> None:
    rng = np.random.default_rng(seed)
    points = rng.standard_normal((25, 3))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    sim = points @ points.T
    got = {frozenset(g) for g in supernodes._average_linkage(sim, 0.3)}
    assert got == greedy_average_linkage(sim, 0.3)


def test_bad_links_and_non_feature_nodes_are_ignored() -> None:
    nodes, links = two_roles()
    links += [
        {"source": "nowhere", "target": "0_1_3", "weight": 1.0},
        {"source": "E_1_1", "target": "0_1_3", "weight": float("nan")},
        {"source": "E_1_1", "target": "0_1_3", "weight": "heavy"},
        {"source": ["E_1_1"], "target": "0_1_3", "weight": 1.0},
        {"source": "E_1_1", "target": "0_1_3", "weight": True},
    ]
    nodes.append({"node_id": "not-an-id", "feature_type": "cross layer transcoder"})
    assert groups(suggest(nodes, links)) == groups(suggest(*two_roles()))


@pytest.mark.parametrize("seed", range(8))
def test_grouping_component_by_component_agrees_with_textbook_average_linkage(seed: int) -> None:
    # Sparse similarities: most rows are alone above the threshold, the rest in a few
    # components, each grouped on its own.
    rng = np.random.default_rng(seed)
    points = rng.standard_normal((40, 16))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    sim = points @ points.T
    linked = sim >= 0.45
    np.fill_diagonal(linked, False)
    assert len(supernodes._components(linked)) > 2
    got = supernodes._average_linkage(sim, 0.45)
    assert {frozenset(g) for g in got} == greedy_average_linkage(sim, 0.45)
    assert [g[0] for g in got] == sorted(g[0] for g in got)
