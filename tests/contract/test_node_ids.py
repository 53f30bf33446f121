"""The node-id grammar and the Cantor pairing of contract.node_ids."""

from __future__ import annotations

import pytest

from contract.node_ids import (
    Kind,
    NodeId,
    cantor_pair,
    cantor_unpair,
    error_id,
    feature_id,
    kind_of,
    legacy_error_id,
    logit_id,
    parse_node_id,
    token_id,
)


@pytest.mark.parametrize(
    ("node_id", "kind", "parts"),
    [
        (feature_id(3, 1204, 2), Kind.FEATURE, (3, 1204, 2)),
        (error_id(0, 4), Kind.ERROR, (0, -1, 4)),
        (error_id(11, 0), Kind.ERROR, (11, -1, 0)),
        (token_id(791, 1), Kind.TOKEN, (None, 791, 1)),
        (logit_id(27, 22605, 10), Kind.LOGIT, (27, 22605, 10)),
    ],
)
def test_canonical_ids_round_trip(
    node_id: str, kind: Kind, parts: tuple[int | None, int, int]
) -> None:
    parsed = parse_node_id(node_id, kind)
    assert parsed == NodeId(kind, *parts)
    assert str(parsed) == node_id


def test_the_older_error_id_parses_to_the_canonical_one() -> None:
    parsed = parse_node_id(legacy_error_id(3, 1), Kind.ERROR)
    assert parsed == NodeId(Kind.ERROR, 3, -1, 1)
    assert str(parsed) == "3_-1_1"
    # Layer 0's older id reads 0_0_{pos}: still layer 0.
    assert str(parse_node_id("0_0_5", Kind.ERROR)) == "0_-1_5"


@pytest.mark.parametrize(
    ("node_id", "kind"),
    [
        ("E_x_0", Kind.TOKEN),
        ("3_1204_2", Kind.TOKEN),
        ("3_-1_2", Kind.FEATURE),  # an error id is not a feature id
        ("3_-1_2", Kind.LOGIT),
        ("3_7_2", Kind.ERROR),  # neither {layer}_-1_{pos} nor 0_{layer}_{pos}
        ("E_5_0", Kind.FEATURE),
        ("3_1204", Kind.FEATURE),
        ("-3_1204_2", Kind.FEATURE),
        ("3_12345678901_2", Kind.FEATURE),  # more than ten digits
        (" 3_1_2", Kind.FEATURE),
        ("3_1_2\n", Kind.FEATURE),
    ],
)
def test_ids_that_do_not_fit_their_kind_are_refused(node_id: str, kind: Kind) -> None:
    assert parse_node_id(node_id, kind) is None


def test_feature_types_name_their_kind() -> None:
    assert kind_of("cross layer transcoder") is Kind.FEATURE
    assert kind_of("per layer transcoder") is Kind.FEATURE
    assert kind_of("mlp reconstruction error") is Kind.ERROR
    assert kind_of("embedding") is Kind.TOKEN
    assert kind_of("logit") is Kind.LOGIT
    assert kind_of("mystery") is None
    assert kind_of(None) is None


def test_cantor_pairing_is_the_neuronpedia_feature_number() -> None:
    assert [cantor_pair(0, 0), cantor_pair(1, 0), cantor_pair(0, 1), cantor_pair(2, 3)] == [
        0,
        1,
        2,
        18,
    ]


@pytest.mark.parametrize(
    ("layer", "index"), [(0, 0), (5, 77), (25, 16383), (0, 2**31 - 1), (61, 10**12)]
)
def test_cantor_unpair_inverts_the_pairing(layer: int, index: int) -> None:
    assert cantor_unpair(cantor_pair(layer, index)) == (layer, index)


def test_every_small_number_is_one_pair() -> None:
    pairs = [cantor_unpair(value) for value in range(500)]
    assert all(cantor_pair(*pair) == value for value, pair in enumerate(pairs))
    assert len(set(pairs)) == 500
