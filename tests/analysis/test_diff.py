"""The graph diff on graphs whose difference is known by construction (analysis/diff.py)."""

from __future__ import annotations

from typing import Any

import pytest

from analysis.diff import AlignedPair, align_tokens, diff_graphs
from tests.analysis.builders import LOGIT_LAYER, document, feature_id

TOKENS_A = ["<bos>", "The", " capital", " of", " France", " is"]
TOKENS_B = ["<bos>", "The", " capital", " of", " Germany", " is"]
CAPITAL, OF, FRANCE, GERMANY, SAY = (0, 10, 2), (1, 20, 3), (0, 30, 4), (0, 31, 4), (3, 40, 5)


def ident(key: tuple[int, int, int]) -> str:
    return feature_id(*key)


@pytest.fixture
def capitals() -> tuple[dict[str, Any], dict[str, Any]]:
    """A and B share "capital" and "of" unchanged, differ in the country feature (one each) and
    in how strongly the answer feature fires, and predict different logits."""
    a = document(
        TOKENS_A,
        {CAPITAL: (1.0, 0.2), OF: (2.0, 0.3), FRANCE: (3.0, 0.1), SAY: (1.0, 0.05)},
        {
            (ident(CAPITAL), ident(SAY)): 1.0,
            (ident(FRANCE), ident(SAY)): 2.0,
            (ident(SAY), f"{LOGIT_LAYER}_55_5"): 3.0,
        },
        logits={55: 0.9},
        token_ids=[1, 2, 3, 4, 50, 6],
    )
    b = document(
        TOKENS_B,
        {CAPITAL: (1.0, 0.2), OF: (2.0, 0.3), GERMANY: (2.0, 0.12), SAY: (2.5, 0.15)},
        {
            (ident(CAPITAL), ident(SAY)): 1.0,
            (ident(GERMANY), ident(SAY)): 1.5,
            (ident(SAY), f"{LOGIT_LAYER}_66_5"): 1.0,
        },
        logits={66: 0.8},
        token_ids=[1, 2, 3, 4, 60, 6],
    )
    return a, b


def by_id(nodes: list[dict[str, Any]], node_id: str) -> dict[str, Any]:
    return next(n for n in nodes if node_id in (n["id_a"], n["id_b"]))


def test_prompts_of_one_length_align_position_by_position() -> None:
    pairs = align_tokens(TOKENS_A, TOKENS_B)
    assert [(p.a, p.b) for p in pairs] == [(i, i) for i in range(6)]
    assert [p.same_token for p in pairs] == [True, True, True, True, False, True]


def test_an_inserted_token_is_aligned_with_nothing_and_the_rest_shift() -> None:
    pairs = align_tokens(["<bos>", "a", "b", "c"], ["<bos>", "x", "a", "b", "c"])
    assert [(p.a, p.b) for p in pairs] == [(0, 0), (1, 2), (2, 3), (3, 4)]


def test_a_replaced_span_pairs_from_its_end() -> None:
    pairs = align_tokens(
        ["<bos>", "The", " Dallas", " is"], ["<bos>", "The", " Sac", "ram", "ento", " is"]
    )
    assert pairs == [
        AlignedPair(0, 0, True),
        AlignedPair(1, 1, True),
        AlignedPair(2, 4, False),
        AlignedPair(3, 5, True),
    ]


def test_the_last_positions_are_always_aligned() -> None:
    pairs = align_tokens(["<bos>", "a", "b"], ["<bos>", "a", "b", "c"])
    assert [(p.a, p.b) for p in pairs] == [(0, 0), (1, 1), (2, 3)]
    assert pairs[-1].same_token is False


def test_a_graph_compared_with_itself_is_all_shared_and_unchanged(
    capitals: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    a, _ = capitals
    diff = diff_graphs(a, a)
    assert {n["status"] for n in diff.nodes} == {"shared"}
    assert all(n["delta_influence"] in (0.0, None) for n in diff.nodes)
    assert all(n["patch"] is None for n in diff.nodes)
    assert {e["status"] for e in diff.edges} == {"shared"}
    assert all(e["delta_weight"] == 0.0 for e in diff.edges)


def test_nodes_are_classified_with_their_changes(
    capitals: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    diff = diff_graphs(*capitals)
    assert diff.summary["feature"] == {"shared": 3, "only_a": 1, "only_b": 1}
    assert diff.summary["token"] == {"shared": 5, "only_a": 1, "only_b": 1}
    assert diff.summary["logit"] == {"shared": 0, "only_a": 1, "only_b": 1}
    assert diff.summary["error"] == {"shared": 1, "only_a": 0, "only_b": 0}
    france = by_id(diff.nodes, ident(FRANCE))
    assert (france["status"], france["id_b"], france["pos_a"]) == ("only_a", None, 4)
    assert france["delta_influence"] == pytest.approx(1.0 - 0.1)
    assert france["activation_b"] is None
    assert france["delta_activation"] is None
    germany = by_id(diff.nodes, ident(GERMANY))
    assert (germany["status"], germany["id_a"], germany["pos_a"], germany["pos_b"]) == (
        "only_b",
        None,
        4,
        4,
    )
    assert germany["delta_influence"] == pytest.approx(0.12 - 1.0)
    say = by_id(diff.nodes, ident(SAY))
    assert say["status"] == "shared"
    assert say["delta_activation"] == pytest.approx(1.5)
    assert say["delta_influence"] == pytest.approx(0.1)
    for key in (CAPITAL, OF):
        same = by_id(diff.nodes, ident(key))
        assert (same["status"], same["delta_activation"], same["delta_influence"]) == (
            "shared",
            0.0,
            0.0,
        )
    paris = by_id(diff.nodes, f"{LOGIT_LAYER}_55_5")
    assert (paris["status"], paris["probability_a"], paris["probability_b"]) == (
        "only_a",
        0.9,
        None,
    )


def test_nodes_come_sorted_by_the_size_of_their_influence_change(
    capitals: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    diff = diff_graphs(*capitals)
    changes = [n["delta_influence"] for n in diff.nodes]
    known = [abs(c) for c in changes if c is not None]
    assert known == sorted(known, reverse=True)
    assert changes[: len(known)] == [c for c in changes if c is not None]
    assert diff.nodes[0]["id_a"] == ident(FRANCE)


def test_edges_are_classified_and_point_at_their_nodes(
    capitals: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    diff = diff_graphs(*capitals)
    assert diff.summary["edges"] == {"shared": 1, "only_a": 2, "only_b": 2}
    assert diff.edges_total == 5
    named = [
        (
            diff.nodes[e["source"]]["id_a"] or diff.nodes[e["source"]]["id_b"],
            diff.nodes[e["target"]]["id_a"] or diff.nodes[e["target"]]["id_b"],
            e["status"],
            e["delta_weight"],
        )
        for e in diff.edges
    ]
    assert named == [
        (ident(SAY), f"{LOGIT_LAYER}_55_5", "only_a", -3.0),
        (ident(FRANCE), ident(SAY), "only_a", -2.0),
        (ident(GERMANY), ident(SAY), "only_b", 1.5),
        (ident(SAY), f"{LOGIT_LAYER}_66_5", "only_b", 1.0),
        (ident(CAPITAL), ident(SAY), "shared", 0.0),
    ]
    assert diff_graphs(*capitals, max_edges=2).edges == diff.edges[:2]


def test_the_patch_sets_a_to_b_where_they_differ(
    capitals: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    diff = diff_graphs(*capitals)
    patches = {(n["id_a"] or n["id_b"]): n["patch"] for n in diff.nodes if n["patch"]}
    assert patches == {
        ident(FRANCE): {"layer": 0, "position": 4, "feature": 30, "action": "ablate"},
        ident(GERMANY): {"layer": 0, "position": 4, "feature": 31, "action": "set", "value": 2.0},
        ident(SAY): {"layer": 3, "position": 5, "feature": 40, "action": "set", "value": 2.5},
    }


def test_features_are_matched_across_shifted_positions() -> None:
    shared, only_b = (2, 5, 2), (0, 9, 1)
    a = document(["<bos>", "a", "b", "c"], {shared: (1.0, 0.2)})
    b = document(["<bos>", "x", "a", "b", "c"], {(2, 5, 3): (1.5, 0.3), only_b: (0.7, 0.4)})
    diff = diff_graphs(a, b)
    moved = by_id(diff.nodes, ident(shared))
    assert (moved["status"], moved["id_b"], moved["pos_a"], moved["pos_b"]) == (
        "shared",
        "2_5_3",
        2,
        3,
    )
    assert moved["patch"] == {
        "layer": 2,
        "position": 2,
        "feature": 5,
        "action": "set",
        "value": 1.5,
    }
    unaligned = by_id(diff.nodes, ident(only_b))
    assert (unaligned["status"], unaligned["pos_a"], unaligned["patch"]) == ("only_b", None, None)
    # The last positions (3 in A, 4 in B) are one position: the error nodes there are shared.
    assert by_id(diff.nodes, "1_-1_3")["id_b"] == "1_-1_4"


def test_features_at_the_first_position_are_never_patched() -> None:
    a = document(["<bos>", "a"], {(0, 1, 0): (1.0, 0.2)})
    b = document(["<bos>", "a"], {(0, 1, 0): (4.0, 0.2)})
    (node,) = [n for n in diff_graphs(a, b).nodes if n["kind"] == "feature"]
    assert node["delta_activation"] == 3.0
    assert node["patch"] is None


def test_duplicate_links_are_summed() -> None:
    key = (0, 1, 1)
    links = [
        {"source": "E_100_0", "target": ident(key), "weight": 1.0},
        {"source": "E_100_0", "target": ident(key), "weight": 0.5},
    ]
    a = document(["<bos>", "a"], {key: (1.0, 0.2)})
    a["links"] = links
    b = document(["<bos>", "a"], {key: (1.0, 0.2)})
    (edge,) = diff_graphs(a, b).edges
    assert (edge["status"], edge["weight_a"], edge["delta_weight"]) == ("only_a", 1.5, -1.5)
