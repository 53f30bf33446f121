"""The explorer's binary sidecar of a stored graph: the graph JSON's links as typed arrays.

Why: a 2M-link graph is a 161 MB JSON file, and the explorer spent most of its opening time
scanning that text, resolving 4M node ids to node indices and sorting the edges. The server does
that work once per artifact and keeps the result; the page only makes typed-array views of it.
The JSON artifact stays the graph's one format (export, import, other tools); the sidecar is
derived from it and can always be made again.

Layout (version 1; every integer little-endian; section offsets are multiples of 8 so that a
``Float64Array`` can view the bytes where they are)::

    offset  size  field
         0     8  magic b"CAGRAPHB"
         8     4  u32 version (1)
        12     4  u32 header bytes (96)
        16     4  u32 node records: the length of the document's ``nodes``
        20     4  u32 links: the length of each array
        24     4  u32 weight bytes: 4 (float32) or 8 (float64)
        28     4  u32 reserved, 0
        32     4  u32 document offset     36  4  u32 document bytes
        40     4  u32 source offset       44  4  u32 target offset
        48     4  u32 weight offset       52  4  u32 total bytes (the whole sidecar)
        56    32  SHA-256 of the JSON artifact it was made from (raw digest)
        88     4  u32 CRC-32 of bytes [96, total): what a reader of stored bytes checks
        92     4  u32 reserved, 0
        96        document: UTF-8 JSON, the artifact's document with ``"links": []``
                  source: u32[links], index of the link's source in ``nodes``
                  target: u32[links], index of its target
                  weight: float32 or float64 [links], the link's weight

Zero bytes pad each section to the next multiple of 8. The links are in the explorer's edge
order: by |weight| descending, compared as float32 (Math.fround), ties in the artifact's order,
so a reader builds its adjacency in one pass and sorts nothing. Weights are float32 when every
weight of the graph is exactly a float32 (the engine's graphs), else float64: the sidecar is
lossless either way. Node indices are positions in the document's ``nodes``; the input is a
stored (validated) artifact, whose node ids are unique and whose links name them exactly, and
anything else is refused rather than guessed.

The frontend's reader is ``frontend/src/explorer/graphBinary.ts``; ``python -m
contract.graph_binary`` writes the vectors its vitest decodes (``graphBinary.gen.ts``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import sys
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

MAGIC = b"CAGRAPHB"
VERSION = 1
HEADER_BYTES = 96
ALIGN = 8
_HEADER = struct.Struct("<8s12I32sII")
assert _HEADER.size == HEADER_BYTES


class GraphBinaryError(ValueError):
    """The document cannot be encoded, or the bytes are not a sidecar this code reads."""


@dataclass(frozen=True)
class Header:
    node_records: int
    links: int
    weight_bytes: int
    document_offset: int
    document_bytes: int
    source_offset: int
    target_offset: int
    weight_offset: int
    total_bytes: int
    artifact_sha256: str  # hex
    crc32: int


def _pad(size: int) -> int:
    return -size % ALIGN


def _document_text(document: Mapping[str, Any]) -> bytes:
    # The same JSON form as the stored artifact (graphs/artifacts.encode), its links left out.
    rest = {key: ([] if key == "links" else value) for key, value in document.items()}
    return json.dumps(rest, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def _link_arrays(
    document: Mapping[str, Any],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    nodes, links = document.get("nodes"), document.get("links")
    if not isinstance(nodes, list) or not isinstance(links, list):
        raise GraphBinaryError("expected a graph document with nodes and links lists")
    index: dict[str, int] = {}
    for k, node in enumerate(nodes):
        node_id = node.get("node_id") if isinstance(node, dict) else None
        if not isinstance(node_id, str) or node_id in index:
            raise GraphBinaryError(f"nodes[{k}]: a missing or repeated node_id")
        index[node_id] = k
    # Whole-list comprehensions, not a loop that sets numpy elements one by one (much slower on
    # 2M links). A failure is located afterwards, by the slow loop.
    try:
        source = np.array([index[link["source"]] for link in links], np.uint32)
        target = np.array([index[link["target"]] for link in links], np.uint32)
        values = [link["weight"] for link in links]
    except (KeyError, TypeError):
        raise _bad_link(links, index) from None
    if not all(type(w) is float or type(w) is int for w in values):  # bool is not a weight
        raise _bad_link(links, index)
    try:
        weight = np.array(values, np.float64)
    except OverflowError:  # an integer beyond any double
        raise GraphBinaryError("a link's weight is not a finite number") from None
    if not np.isfinite(weight).all():
        raise GraphBinaryError("a link's weight is not a finite number")
    # The explorer's order (explorer/graph.ts orderByDescending): float32 |weight| descending,
    # ties in input order. A stable sort of the negated keys is the same order. What float32
    # cannot hold becomes Infinity, as Math.fround makes it.
    with np.errstate(over="ignore"):
        order = np.argsort(-np.abs(weight).astype(np.float32), kind="stable")
    return source[order], target[order], weight[order]


def _bad_link(links: list[Any], index: dict[str, int]) -> GraphBinaryError:
    for e, link in enumerate(links):
        ends = (link.get("source"), link.get("target")) if isinstance(link, dict) else (None,)
        if not all(isinstance(end, str) and end in index for end in ends):
            return GraphBinaryError(f"links[{e}]: not a link between two nodes")
        w = link.get("weight")
        if type(w) is not float and type(w) is not int:
            return GraphBinaryError(f"links[{e}]: the weight is not a number")
    return GraphBinaryError("a link is not a link between two nodes")


def encode(document: Mapping[str, Any], *, artifact_sha256: str) -> bytes:
    """The sidecar of a stored graph document (see the module docstring)."""
    try:
        digest = bytes.fromhex(artifact_sha256)
    except ValueError:
        digest = b""
    if len(digest) != 32:
        raise GraphBinaryError("artifact_sha256: expected 64 hex digits")
    text = _document_text(document)
    source, target, weight = _link_arrays(document)
    # Overflow to inf is fine here: it fails the equality, and the weights stay float64.
    with np.errstate(over="ignore"):
        as_float32 = weight.astype(np.float32)
    exact = bool((as_float32.astype(np.float64) == weight).all())
    arrays = (source, target, as_float32 if exact else weight)
    # Little-endian whatever the machine making it.
    sections = [text, *(a.astype(a.dtype.newbyteorder("<")).tobytes() for a in arrays)]
    offsets = []
    at = HEADER_BYTES
    for section in sections:
        offsets.append(at)
        at += len(section) + _pad(len(section))
    if at >= 2**32:
        raise GraphBinaryError("the graph is too large for a version-1 sidecar (4 GiB)")
    body = b"".join(section + bytes(_pad(len(section))) for section in sections)
    header = _HEADER.pack(
        MAGIC,
        VERSION,
        HEADER_BYTES,
        len(document["nodes"]),
        len(source),
        arrays[2].itemsize,
        0,
        offsets[0],
        len(text),
        offsets[1],
        offsets[2],
        offsets[3],
        at,
        digest,
        zlib.crc32(body),
        0,
    )
    return header + body


def read_header(data: bytes) -> Header:
    """The header, once its fields are consistent with each other and with ``len(data)``."""
    if len(data) < HEADER_BYTES:
        raise GraphBinaryError("too short for a graph sidecar")
    (magic, version, header_bytes, records, links, weight_bytes, reserved) = _HEADER.unpack_from(
        data
    )[:7]
    (doc_offset, doc_bytes, src_offset, dst_offset, w_offset, total, sha, crc, reserved2) = (
        _HEADER.unpack_from(data)[7:]
    )
    if magic != MAGIC:
        raise GraphBinaryError("not a graph sidecar (bad magic)")
    if version != VERSION or header_bytes != HEADER_BYTES:
        raise GraphBinaryError(f"graph sidecar version {version}; this code reads {VERSION}")
    expected = [
        (doc_offset, HEADER_BYTES),
        (src_offset, doc_offset + doc_bytes + _pad(doc_bytes)),
        (dst_offset, src_offset + 4 * links + _pad(4 * links)),
        (w_offset, dst_offset + 4 * links + _pad(4 * links)),
        (total, w_offset + weight_bytes * links + _pad(weight_bytes * links)),
        (total, len(data)),
    ]
    if weight_bytes not in (4, 8) or reserved or reserved2 or any(a != b for a, b in expected):
        raise GraphBinaryError("the graph sidecar's header does not match its sections")
    return Header(
        records,
        links,
        weight_bytes,
        doc_offset,
        doc_bytes,
        src_offset,
        dst_offset,
        w_offset,
        total,
        sha.hex(),
        crc,
    )


def verify(data: bytes, *, artifact_sha256: str) -> Header:
    """The header of a sidecar of that artifact whose bytes are intact; else GraphBinaryError."""
    header = read_header(data)
    if header.artifact_sha256 != artifact_sha256:
        raise GraphBinaryError("the graph sidecar was made from another artifact")
    if zlib.crc32(memoryview(data)[HEADER_BYTES:]) != header.crc32:
        raise GraphBinaryError("the graph sidecar's bytes are damaged (CRC-32)")
    return header


def decode(data: bytes) -> dict[str, Any]:
    """The document again, its links in the sidecar's order (tests; the page reads it in TS)."""
    h = read_header(data)
    document: dict[str, Any] = json.loads(
        data[h.document_offset : h.document_offset + h.document_bytes]
    )
    if len(document.get("nodes", ())) != h.node_records:
        raise GraphBinaryError("the graph sidecar's node count does not match its document")
    ids = [node["node_id"] for node in document["nodes"]]
    source = np.frombuffer(data, np.dtype("<u4"), h.links, h.source_offset)
    target = np.frombuffer(data, np.dtype("<u4"), h.links, h.target_offset)
    weight = np.frombuffer(data, np.dtype(f"<f{h.weight_bytes}"), h.links, h.weight_offset)
    document["links"] = [
        {"source": ids[s], "target": ids[t], "weight": float(w)}
        for s, t, w in zip(source.tolist(), target.tolist(), weight.tolist(), strict=True)
    ]
    return document


# ---------------------------------------------------------------------------------------------
# Test vectors for the frontend's reader (frontend/src/explorer/graphBinary.test.ts).

VECTORS_PATH = (
    Path(__file__).resolve().parent.parent / "frontend" / "src" / "explorer" / "graphBinary.gen.ts"
)


def _node(node_id: str, feature_type: str, layer: str, ctx: int, **extra: Any) -> dict[str, Any]:
    return {
        "node_id": node_id,
        "feature": extra.pop("feature", None),
        "layer": layer,
        "ctx_idx": ctx,
        "feature_type": feature_type,
        "jsNodeId": node_id,
        "clerp": extra.pop("clerp", ""),
        "influence": extra.pop("influence", None),
        "activation": extra.pop("activation", None),
        "token_prob": extra.pop("token_prob", 0.0),
        "is_target_logit": extra.pop("is_target_logit", False),
    }


def _vector_documents() -> dict[str, dict[str, Any]]:
    metadata = {
        "slug": "vector",
        "scan": "gemma-3-270m",
        "prompt": "The capital of France",
        "prompt_tokens": ["<bos>", "The", " capital", " of", " France é"],
        "schema_version": 1,
    }
    # Node order mixes kinds on purpose: indices are positions in the file, not kind-major.
    nodes = [
        _node("27_9_4", "logit", "27", 4, clerp='Output " Paris" (p=0.6)', token_prob=0.6),
        _node("3_1204_2", "cross layer transcoder", "3", 2, feature=1204, influence=0.5),
        _node("E_651_1", "embedding", "E", 1),
        _node("2_-1_3", "mlp reconstruction error", "2", 3, influence=0.25),
        _node("0_17_4", "cross layer transcoder", "0", 4, activation=1.5, clerp="capital ✓"),
        _node("E_2_0", "embedding", "E", 0),
    ]
    links = [
        {"source": "E_651_1", "target": "3_1204_2", "weight": 0.5},
        {"source": "3_1204_2", "target": "27_9_4", "weight": -0.5},  # ties |0.5|: file order
        {"source": "2_-1_3", "target": "27_9_4", "weight": 1.0 / 3.0},  # not a float32
        {"source": "E_2_0", "target": "0_17_4", "weight": 2.5},
        {"source": "E_2_0", "target": "0_17_4", "weight": 2.5},  # a duplicate link
        {"source": "0_17_4", "target": "27_9_4", "weight": 2.0**-100},
        {"source": "0_17_4", "target": "0_17_4", "weight": -0.0},
    ]
    qparams = {"pinnedIds": ["27_9_4"], "supernodes": [], "linkType": "both"}
    base = {"metadata": metadata, "qParams": qparams, "nodes": nodes}
    float32_links = [link for link in links if link["weight"] != 1.0 / 3.0]
    return {
        "float64 weights": {**base, "links": links},
        "float32 weights": {**base, "links": float32_links},
        "no links": {**base, "links": []},
    }


def _sha256_of(document: Mapping[str, Any]) -> str:
    text = json.dumps(document, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def render_vectors() -> str:
    vectors = [
        {
            "name": name,
            "json": json.dumps(document, separators=(",", ":"), ensure_ascii=False),
            "binary": base64.b64encode(
                encode(document, artifact_sha256=_sha256_of(document))
            ).decode(),
        }
        for name, document in _vector_documents().items()
    ]
    body = json.dumps(vectors, indent=2, ensure_ascii=False)
    return (
        "// Generated by `.venv/bin/python -m contract.graph_binary` (contract/graph_binary.py):\n"
        "// small graphs as JSON and as the Python encoder's sidecar (base64). Do not edit.\n"
        "// tests/contract/test_graph_binary.py fails when this file is stale.\n\n"
        "export interface GraphBinaryVector {\n"
        "  name: string;\n"
        "  json: string;\n"
        "  binary: string;\n"
        "}\n\n"
        f"export const GRAPH_BINARY_VECTORS: readonly GraphBinaryVector[] = {body};\n"
        f"export const GRAPH_BINARY_VERSION = {VERSION};\n"
    )


def main() -> int:
    VECTORS_PATH.write_text(render_vectors())
    print(f"wrote {VECTORS_PATH}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
