"""The explorer's binary sidecar (contract/graph_binary.py): lossless, in the explorer's edge
order, and refused when damaged. The order is checked against a sort written here, not numpy's."""

from __future__ import annotations

import json
import random
import struct
from typing import Any

import pytest

from contract import graph_binary
from contract.graph_binary import GraphBinaryError
from contract.graph_json import validate_graph

N_LAYERS = 6
SHA = "ab" * 32


def _f32(value: float) -> float:
    return float(struct.unpack("<f", struct.pack("<f", value))[0])


def _f32_abs(value: float) -> float:
    try:
        return _f32(abs(value))
    except OverflowError:  # struct refuses what float32 cannot hold; the explorer sees Infinity
        return float("inf")


def random_graph(rng: random.Random, *, n_links: int, float32_weights: bool) -> dict[str, Any]:
    """A valid stored graph: every kind of node, ids in any order, links with repeats and ties."""
    tokens = ["<bos>", *(f" t{i}" for i in range(rng.randint(1, 6)))]
    nodes: list[dict[str, Any]] = []
    for pos in range(len(tokens)):
        nodes.append({"node_id": f"E_{rng.randint(0, 999)}_{pos}", "layer": "E", "ctx_idx": pos,
                      "feature_type": "embedding", "feature": None})  # fmt: skip
    for layer in range(N_LAYERS):
        for pos in rng.sample(range(len(tokens)), rng.randint(0, len(tokens))):
            nodes.append({"node_id": f"{layer}_-1_{pos}", "layer": str(layer), "ctx_idx": pos,
                          "feature_type": "mlp reconstruction error"})  # fmt: skip
        for index in rng.sample(range(5000), rng.randint(0, 8)):
            pos = rng.randrange(len(tokens))
            nodes.append({"node_id": f"{layer}_{index}_{pos}", "layer": str(layer), "ctx_idx": pos,
                          "feature_type": "cross layer transcoder", "clerp": f"f{index} é",
                          "activation": rng.random(), "influence": rng.random()})  # fmt: skip
    for vocab in rng.sample(range(1000), 3):
        nodes.append({"node_id": f"{N_LAYERS + 1}_{vocab}_{len(tokens) - 1}",
                      "layer": str(N_LAYERS + 1), "ctx_idx": len(tokens) - 1,
                      "feature_type": "logit", "clerp": f'Output "{vocab}" (p=0.1)'})  # fmt: skip
    rng.shuffle(nodes)
    ids = [node["node_id"] for node in nodes]
    links: list[dict[str, Any]] = []
    for _ in range(n_links):
        if links and rng.random() < 0.1:
            links.append(dict(rng.choice(links)))  # a duplicate link
            continue
        weight = rng.choice([0.5, -0.5, 2.0, rng.gauss(0, 1), rng.gauss(0, 1) * 1e-8])
        weight = _f32(weight) if float32_weights else weight
        links.append({"source": rng.choice(ids), "target": rng.choice(ids), "weight": weight})
    document = {
        "metadata": {"slug": "r", "scan": "tiny", "prompt": "".join(tokens[1:]),
                     "prompt_tokens": tokens, "schema_version": 1},
        "qParams": {"pinnedIds": [ids[0]], "supernodes": []},
        "nodes": nodes,
        "links": links,
    }  # fmt: skip
    return validate_graph(document, n_layers=N_LAYERS).document


def explorer_order(links: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What explorer/graph.ts orderByDescending does: float32 |weight| descending, stable."""
    keyed = sorted(enumerate(links), key=lambda item: (-_f32_abs(item[1]["weight"]), item[0]))
    return [link for _, link in keyed]


CASES = [(seed, n_links, f32) for seed in range(4) for n_links in (0, 1, 60) for f32 in (0, 1)]


@pytest.mark.parametrize(("seed", "n_links", "float32_weights"), CASES)
def test_a_sidecar_decodes_to_its_json_with_links_in_the_explorers_order(
    seed: int, n_links: int, float32_weights: int
) -> None:
    document = random_graph(
        random.Random(seed), n_links=n_links, float32_weights=bool(float32_weights)
    )
    data = graph_binary.encode(document, artifact_sha256=SHA)
    decoded = graph_binary.decode(data)
    assert {k: v for k, v in decoded.items() if k != "links"} == {
        k: v for k, v in document.items() if k != "links"
    }
    assert list(decoded) == list(document)  # keys in the artifact's order too
    assert decoded["links"] == explorer_order(document["links"])
    header = graph_binary.verify(data, artifact_sha256=SHA)
    assert header.links == n_links
    assert header.node_records == len(document["nodes"])
    exact = all(_f32_abs(link["weight"]) == abs(link["weight"]) for link in document["links"])
    assert header.weight_bytes == (4 if exact else 8)
    assert exact or not float32_weights
    for offset in (header.document_offset, header.source_offset, header.weight_offset):
        assert offset % graph_binary.ALIGN == 0


def test_weights_keep_their_sign_and_every_bit() -> None:
    tiny = 5e-324  # the smallest double: not a float32, so the weights stay float64
    document = random_graph(random.Random(9), n_links=0, float32_weights=True)
    node = document["nodes"][0]["node_id"]
    document["links"] = [
        {"source": node, "target": node, "weight": w} for w in (-0.0, 0.1, tiny, 1e300)
    ]
    links = graph_binary.decode(graph_binary.encode(document, artifact_sha256=SHA))["links"]
    weights = [link["weight"] for link in links]
    assert [struct.pack("<d", w) for w in weights] == [
        struct.pack("<d", w) for w in (1e300, 0.1, -0.0, tiny)
    ]


def test_the_sidecar_is_the_same_bytes_every_time() -> None:
    document = random_graph(random.Random(3), n_links=40, float32_weights=False)
    first = graph_binary.encode(document, artifact_sha256=SHA)
    assert graph_binary.encode(json.loads(json.dumps(document)), artifact_sha256=SHA) == first


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["links"].append({"source": "nope", "target": "nope", "weight": 1}), "links"),
        (lambda d: d["links"].append({**d["links"][0], "weight": float("nan")}), "finite"),
        (lambda d: d["links"].append({**d["links"][0], "weight": "1"}), "not a number"),
        (lambda d: d["links"].append({**d["links"][0], "weight": True}), "not a number"),
        (lambda d: d["links"].append({**d["links"][0], "weight": 10**400}), "finite"),
        (lambda d: d["links"].append({**d["links"][0], "target": ["x"]}), "links"),
        (lambda d: d["links"].append("a link"), "links"),
        (lambda d: d["nodes"].append(dict(d["nodes"][0])), "repeated node_id"),
        (lambda d: d.pop("nodes"), "nodes and links"),
    ],
)
def test_a_document_that_is_not_a_stored_graph_is_refused(edit: Any, message: str) -> None:
    document = random_graph(random.Random(1), n_links=5, float32_weights=True)
    edit(document)
    with pytest.raises(GraphBinaryError, match=message):
        graph_binary.encode(document, artifact_sha256=SHA)


def test_an_artifact_digest_that_is_not_sha256_hex_is_refused() -> None:
    document = random_graph(random.Random(4), n_links=2, float32_weights=True)
    for digest in ("ab" * 31, "zz" * 32, ""):
        with pytest.raises(GraphBinaryError, match="64 hex digits"):
            graph_binary.encode(document, artifact_sha256=digest)


def _damaged(data: bytes, at: int, value: bytes) -> bytes:
    return data[:at] + value + data[at + len(value) :]


def test_damaged_or_foreign_bytes_are_refused() -> None:
    document = random_graph(random.Random(2), n_links=30, float32_weights=False)
    data = graph_binary.encode(document, artifact_sha256=SHA)
    header = graph_binary.read_header(data)
    cases = {
        "bad magic": _damaged(data, 0, b"X"),
        "version 2": _damaged(data, 8, struct.pack("<I", 2)),
        "does not match": data[:-8],
        "too short": data[:50],
        "CRC-32": _damaged(data, header.weight_offset + 3, b"\xff"),
    }
    for message, bad in cases.items():
        with pytest.raises(GraphBinaryError, match=message):
            graph_binary.verify(bad, artifact_sha256=SHA)
    with pytest.raises(GraphBinaryError, match="another artifact"):
        graph_binary.verify(data, artifact_sha256="cd" * 32)


def test_the_frontend_vectors_are_fresh() -> None:
    assert graph_binary.VECTORS_PATH.read_text() == graph_binary.render_vectors(), (
        "graphBinary.gen.ts is stale: run .venv/bin/python -m contract.graph_binary"
    )
