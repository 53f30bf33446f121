"""Validate and normalise attribution-graph JSON (circuit-tracer / Neuronpedia schema v1).

The data contract, as circuit-tracer's ``create_graph_files`` writes it and Neuronpedia reads it::

    {"metadata": {"slug", "scan", "prompt", "prompt_tokens", "node_threshold"?, "info"?,
                  "generation_settings"?, "pruning_settings"?, "feature_details"?, ...},
     "qParams":  {"pinnedIds": [id], "supernodes": [[label, id, ...]], "linkType",
                  "clickedId", "sg_pos", "clerps"?: [[id, label]], "pruningThreshold"?,
                  "edgeThreshold"?, "densityThreshold"?},
     "nodes":    [{"node_id", "feature", "layer", "ctx_idx", "feature_type", "jsNodeId",
                   "clerp", "influence", "activation", "token_prob", "is_target_logit"}],
     "links":    [{"source": node_id, "target": node_id, "weight": float}]}

Node ids follow ``contract.node_ids``: a feature's ``feature`` is rewritten to the Cantor pairing
of (layer, index); an error id in the older ``0_{layer}_{pos}`` form is rewritten to
``{layer}_-1_{pos}``, in links, pinned ids, supernodes and labels too.

``qParams.clerps`` holds the labels a person gave nodes (Neuronpedia's ``[[id, label]]``; an
``{id: label}`` object is accepted). An export writes each label into its node's ``clerp`` too,
for tools that read only that; a node whose ``clerp`` is its label is that copy, and its ``clerp``
is cleared again on the way in, so the label stays a label (editable) rather than the node's name.

``layer`` is written as a string, as circuit-tracer does. Labels (``clerp``) are kept as plain
text; nothing here interprets them. Sizes are bounded before anything per-node is built, and
every error names its field: ``nodes[12].layer: expected an integer``.

The engine's tests check its output with this validator, the upload and import paths check
files with it, and the worker checks a generated graph with it before storing it: one schema.
"""

from __future__ import annotations

import json
import math
import re
import zlib
from dataclasses import dataclass, field
from typing import Any, BinaryIO, cast

from contract.node_ids import (
    EMBEDDING_TYPE,
    KNOWN_TYPES,
    LOGIT_TYPE,
    Kind,
    cantor_pair,
    error_id,
    kind_of,
    legacy_error_id,
    parse_node_id,
)

SCHEMA_VERSION = 1

MAX_LABEL_CHARS = 1000
MAX_NODE_ID_CHARS = 100
MAX_ERRORS = 20
_MAX_INT = 2**31 - 1


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 100 * 1024 * 1024
    max_nodes: int = 100_000
    max_links: int = 2_000_000
    # the memory planner's target length (docs/engine.md, "Memory"); a model's own cap is lower
    max_prompt_tokens: int = 8192


DEFAULT_LIMITS = Limits()


class GraphFormatError(ValueError):
    """A graph file that does not follow its format; the message says where."""


class GraphValidationError(GraphFormatError):
    """A graph document that does not fit the schema; ``errors`` maps field path to message."""

    def __init__(self, errors: dict[str, str], *, too_large: bool = False) -> None:
        self.errors = errors
        self.too_large = too_large
        first = next(iter(errors.items()))
        super().__init__(f"{first[0]}: {first[1]}")


@dataclass
class FeatureNode:
    node_id: str
    layer: int
    position: int
    feature_index: int
    activation: float | None
    influence: float | None


@dataclass
class NormalisedGraph:
    document: dict[str, Any]
    feature_nodes: list[FeatureNode] = field(default_factory=list)

    @property
    def n_nodes(self) -> int:
        return len(self.document["nodes"])

    @property
    def n_links(self) -> int:
        return len(self.document["links"])

    @property
    def metadata(self) -> dict[str, Any]:
        metadata: dict[str, Any] = self.document["metadata"]
        return metadata


# ---------------------------------------------------------------------------------------------
# Reading bytes


def read_limited(stream: BinaryIO, max_bytes: int) -> bytes:
    """The stream's bytes, gunzipped when gzipped, refusing more than ``max_bytes`` either way."""
    head = stream.read(2)
    if head == b"\x1f\x8b":
        try:
            data = _gunzip_limited(stream, head, max_bytes)
        except zlib.error:
            raise GraphValidationError({"file": "not a valid gzip file"}) from None
    else:
        data = head + stream.read(max_bytes + 1 - len(head))
    if len(data) > max_bytes:
        raise GraphValidationError(
            {"file": f"larger than the limit of {max_bytes:,} bytes"}, too_large=True
        )
    return data


def _gunzip_limited(stream: BinaryIO, head: bytes, max_bytes: int) -> bytes:
    # Decompress at most max_bytes + 1 bytes, so a gzip bomb costs us nothing.
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    chunks = [decompressor.decompress(head, max_bytes + 1)]
    size = len(chunks[0])
    while size <= max_bytes and not decompressor.eof:
        block = decompressor.unconsumed_tail or stream.read(1 << 20)
        if not block:
            raise GraphValidationError({"file": "not a valid gzip file (truncated)"})
        chunk = decompressor.decompress(block, max_bytes + 1 - size)
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # 1e999: an artifact holding it would not be JSON any more
        raise ValueError(f"{text} is not a finite number")
    return value


def parse_json(data: bytes) -> Any:
    try:
        return json.loads(data, parse_constant=_reject_constant, parse_float=_finite_float)
    except UnicodeDecodeError:
        raise GraphValidationError({"file": "not UTF-8 text"}) from None
    except RecursionError:
        raise GraphValidationError({"file": "JSON nested too deeply"}) from None
    except ValueError as exc:
        raise GraphValidationError({"file": f"not valid JSON ({exc})"}) from None


# ---------------------------------------------------------------------------------------------
# Validation


class _Errors:
    def __init__(self) -> None:
        self.errors: dict[str, str] = {}

    def add(self, path: str, message: str) -> None:
        if path not in self.errors:
            self.errors[path] = message
        if len(self.errors) >= MAX_ERRORS:
            self.raise_()

    def raise_(self) -> None:
        raise GraphValidationError(self.errors)

    def __bool__(self) -> bool:
        return bool(self.errors)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def _int_field(value: Any, path: str, errors: _Errors, *, low: int, high: int) -> int | None:
    if isinstance(value, str) and re.fullmatch(r"-?\d{1,10}", value):
        value = int(value)
    if not _is_int(value):
        errors.add(path, "expected an integer")
        return None
    if not low <= value <= high:
        errors.add(path, f"must be between {low} and {high}, got {value}")
        return None
    return int(value)


def _optional_number(value: Any, path: str, errors: _Errors) -> float | None:
    if value is None:
        return None
    if not _is_number(value):
        errors.add(path, "expected a finite number or null")
        return None
    return float(value)


def _string(
    value: Any, path: str, errors: _Errors, *, max_chars: int, required: bool = True
) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        errors.add(path, "expected a string")
        return ""
    if len(value) > max_chars:
        errors.add(path, f"longer than {max_chars} characters")
        return ""
    if "\x00" in value:
        errors.add(path, "contains a NUL character")
        return ""
    return value


def _validate_metadata(raw: Any, errors: _Errors, limits: Limits) -> dict[str, Any]:
    if not isinstance(raw, dict):
        errors.add("metadata", "expected an object")
        errors.raise_()
    metadata = dict(raw)
    metadata["prompt"] = _string(raw.get("prompt"), "metadata.prompt", errors, max_chars=100_000)
    tokens = raw.get("prompt_tokens")
    if not isinstance(tokens, list):
        errors.add("metadata.prompt_tokens", "expected a list of strings")
        tokens = []
    elif len(tokens) > limits.max_prompt_tokens:
        errors.add("metadata.prompt_tokens", f"more than {limits.max_prompt_tokens} tokens")
        tokens = []
    elif not all(isinstance(t, str) and "\x00" not in t for t in tokens):
        errors.add("metadata.prompt_tokens", "expected a list of strings (without NUL)")
    metadata["prompt_tokens"] = tokens
    for key in ("slug", "scan"):
        if key in raw:
            metadata[key] = _string(raw[key], f"metadata.{key}", errors, max_chars=200)
    if raw.get("node_threshold") is not None and not _is_number(raw["node_threshold"]):
        errors.add("metadata.node_threshold", "expected a number")
    for key in ("info", "generation_settings", "pruning_settings", "feature_details", "scores"):
        if key in raw and not isinstance(raw[key], dict):
            errors.add(f"metadata.{key}", "expected an object")
        elif key in raw and "\\u0000" in json.dumps(raw[key]):
            errors.add(f"metadata.{key}", "contains a NUL character")
    metadata["schema_version"] = SCHEMA_VERSION
    return metadata


def _validate_qparams(raw: Any, errors: _Errors) -> dict[str, Any]:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        errors.add("qParams", "expected an object")
        return {}
    pinned: Any = raw.get("pinnedIds", [])
    if isinstance(pinned, str):  # Neuronpedia URLs carry them comma-separated
        pinned = [p for p in pinned.split(",") if p]
    if not isinstance(pinned, list) or not all(isinstance(p, str) for p in pinned):
        errors.add("qParams.pinnedIds", "expected a list of node ids")
        pinned = []
    supernodes = raw.get("supernodes", [])
    if not isinstance(supernodes, list) or not all(
        isinstance(s, list) and all(isinstance(x, str) for x in s) for s in supernodes
    ):
        errors.add("qParams.supernodes", "expected a list of [label, node_id, ...] lists")
        supernodes = []
    out: dict[str, Any] = {"pinnedIds": pinned, "supernodes": supernodes}
    for key, default in (("linkType", "both"), ("clickedId", ""), ("sg_pos", "")):
        value = raw.get(key, default)
        out[key] = value if isinstance(value, str) else default
    if "clerps" in raw:
        out["clerps"] = _validate_clerps(raw["clerps"], errors)
    for key in ("pruningThreshold", "edgeThreshold", "densityThreshold"):
        value = raw.get(key)
        if value is None:
            continue
        if not _is_number(value) or not 0 <= value <= 1:
            errors.add(f"qParams.{key}", "expected a number from 0 to 1 or null")
        else:
            out[key] = float(value)
    return out


def _validate_clerps(raw: Any, errors: _Errors) -> list[list[str]]:
    pairs = list(raw.items()) if isinstance(raw, dict) else raw
    if not isinstance(pairs, list):
        errors.add("qParams.clerps", "expected a list of [node_id, label] pairs")
        return []
    out: list[list[str]] = []
    for i, pair in enumerate(pairs):
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            errors.add(f"qParams.clerps[{i}]", "expected [node_id, label]")
            continue
        node_id = _string(pair[0], f"qParams.clerps[{i}][0]", errors, max_chars=MAX_NODE_ID_CHARS)
        label = _string(pair[1], f"qParams.clerps[{i}][1]", errors, max_chars=MAX_LABEL_CHARS)
        if node_id and label:
            out.append([node_id, label])
    return out


def validate_graph(
    data: Any, *, n_layers: int | None = None, limits: Limits = DEFAULT_LIMITS
) -> NormalisedGraph:
    """Check a parsed graph document and return its normalised form (see the module docstring).

    ``n_layers``: the model's transcoder layers, when known, bounds layers and fixes the logits'.
    Raises GraphValidationError naming every bad field (up to MAX_ERRORS).
    """
    errors = _Errors()
    if not isinstance(data, dict):
        raise GraphValidationError({"file": "expected a JSON object with metadata, nodes, links"})
    for key in ("metadata", "nodes", "links"):
        if key not in data:
            errors.add(key, "required")
    if errors:
        errors.raise_()
    raw_nodes, raw_links = data["nodes"], data["links"]
    # Bound sizes before building anything per node.
    if not isinstance(raw_nodes, list):
        errors.add("nodes", "expected a list")
    elif len(raw_nodes) > limits.max_nodes:
        errors.add("nodes", f"{len(raw_nodes):,} nodes; the limit is {limits.max_nodes:,}")
    if not isinstance(raw_links, list):
        errors.add("links", "expected a list")
    elif len(raw_links) > limits.max_links:
        errors.add("links", f"{len(raw_links):,} links; the limit is {limits.max_links:,}")
    if errors:
        errors.raise_()

    metadata = _validate_metadata(data["metadata"], errors, limits)
    qparams = _validate_qparams(data.get("qParams"), errors)
    n_pos = len(metadata["prompt_tokens"]) or limits.max_prompt_tokens
    max_layer = (n_layers + 1) if n_layers is not None else 10_000

    nodes: list[dict[str, Any]] = []
    features: list[FeatureNode] = []
    renamed: dict[str, str] = {}
    seen: set[str] = set()
    for i, raw in enumerate(raw_nodes):
        node = _validate_node(raw, f"nodes[{i}]", errors, n_layers, max_layer, n_pos)
        if node is None:
            continue
        node_dict, original_id, feature = node
        node_id = node_dict["node_id"]
        if node_id in seen:
            errors.add(f"nodes[{i}].node_id", f"duplicate node id {node_id!r}")
            continue
        seen.add(node_id)
        if original_id != node_id:
            renamed[original_id] = node_id
        nodes.append(node_dict)
        if feature is not None:
            features.append(feature)

    if errors:  # links to a broken node would only repeat the node's error
        errors.raise_()
    links: list[dict[str, Any]] = []
    for i, raw in enumerate(raw_links):
        path = f"links[{i}]"
        if not isinstance(raw, dict):
            errors.add(path, "expected an object with source, target, weight")
            continue
        ends = []
        for end in ("source", "target"):
            value = raw.get(end)
            if not isinstance(value, str):
                errors.add(f"{path}.{end}", "expected a node id string")
                continue
            value = renamed.get(value, value)
            if value not in seen:
                errors.add(f"{path}.{end}", f"{value[:MAX_NODE_ID_CHARS]!r} is not a node")
                continue
            ends.append(value)
        weight = raw.get("weight")
        if not _is_number(weight):
            errors.add(f"{path}.weight", "expected a finite number")
            continue
        if len(ends) == 2:
            links.append(
                {"source": ends[0], "target": ends[1], "weight": float(cast(float, weight))}
            )
    if errors:
        errors.raise_()

    qparams["pinnedIds"] = [renamed.get(p, p) for p in qparams["pinnedIds"]]
    qparams["supernodes"] = [
        [s[0], *(renamed.get(p, p) for p in s[1:])] for s in qparams["supernodes"] if s
    ]
    if "clerps" in qparams:
        qparams["clerps"] = [[renamed.get(i, i), label] for i, label in qparams["clerps"]]
        labels = dict(qparams["clerps"])
        for kept in nodes:
            if kept["clerp"] and labels.get(kept["node_id"]) == kept["clerp"]:
                kept["clerp"] = ""  # the export's copy of the label (see the module docstring)
    document = {"metadata": metadata, "qParams": qparams, "nodes": nodes, "links": links}
    return NormalisedGraph(document=document, feature_nodes=features)


def _validate_node(
    raw: Any, path: str, errors: _Errors, n_layers: int | None, max_layer: int, n_pos: int
) -> tuple[dict[str, Any], str, FeatureNode | None] | None:
    if not isinstance(raw, dict):
        errors.add(path, "expected an object")
        return None
    before = len(errors.errors)
    node_id = _string(raw.get("node_id"), f"{path}.node_id", errors, max_chars=MAX_NODE_ID_CHARS)
    kind = raw.get("feature_type")
    if kind not in KNOWN_TYPES:
        errors.add(f"{path}.feature_type", f"expected one of {', '.join(KNOWN_TYPES)}")
    position = _int_field(raw.get("ctx_idx"), f"{path}.ctx_idx", errors, low=0, high=n_pos - 1)
    clerp = _string(
        raw.get("clerp", ""), f"{path}.clerp", errors, max_chars=MAX_LABEL_CHARS, required=False
    )
    influence = _optional_number(raw.get("influence"), f"{path}.influence", errors)
    activation = _optional_number(raw.get("activation"), f"{path}.activation", errors)
    token_prob = _optional_number(raw.get("token_prob", 0.0), f"{path}.token_prob", errors) or 0.0
    is_target = raw.get("is_target_logit", False)
    if not isinstance(is_target, bool):
        errors.add(f"{path}.is_target_logit", "expected true or false")
    given_feature = raw.get("feature")
    if given_feature is not None and not _is_int(given_feature):
        errors.add(f"{path}.feature", "expected an integer or null")
    layer: int | None = None
    if kind == EMBEDDING_TYPE:
        if raw.get("layer") not in ("E", None):
            errors.add(f"{path}.layer", 'expected "E" for an embedding node')
    else:
        high = max_layer if kind == LOGIT_TYPE else max_layer - 2
        layer = _int_field(raw.get("layer"), f"{path}.layer", errors, low=0, high=high)
    if len(errors.errors) > before or position is None:
        return None

    out: dict[str, Any] = {
        "node_id": node_id,
        "feature": given_feature,
        "layer": "E" if kind == EMBEDDING_TYPE else str(layer),
        "ctx_idx": position,
        "feature_type": kind,
        "jsNodeId": raw.get("jsNodeId") if isinstance(raw.get("jsNodeId"), str) else node_id,
        "clerp": clerp,
        "influence": influence,
        "activation": activation,
        "token_prob": token_prob,
        "is_target_logit": is_target,
    }
    feature: FeatureNode | None = None
    node_kind = kind_of(kind)
    parsed = parse_node_id(node_id, node_kind) if node_kind is not None else None
    if node_kind is Kind.FEATURE:
        assert layer is not None
        if parsed is None or parsed.layer != layer or parsed.pos != position:
            errors.add(
                f"{path}.node_id",
                f"a feature node's id must be {{layer}}_{{index}}_{{pos}} ({layer}_<index>_{position})",
            )
            return None
        if parsed.number > _MAX_INT:
            errors.add(f"{path}.node_id", "feature index out of range")
            return None
        out["feature"] = cantor_pair(layer, parsed.number)
        feature = FeatureNode(node_id, layer, position, parsed.number, activation, influence)
    elif node_kind is Kind.ERROR:
        assert layer is not None
        canonical = error_id(layer, position)
        if parsed is None or str(parsed) != canonical:
            errors.add(
                f"{path}.node_id",
                f"an error node's id must be {canonical} "
                f"(or the older {legacy_error_id(layer, position)})",
            )
            return None
        out["node_id"] = canonical
        if out["jsNodeId"] == node_id:
            out["jsNodeId"] = f"{layer}_-1-{position}"
        out["feature"] = -1
    elif parsed is None:
        errors.add(f"{path}.node_id", f"id {node_id!r} does not fit feature_type {kind!r}")
        return None
    elif node_kind is Kind.LOGIT and n_layers is not None and layer != n_layers + 1:
        errors.add(f"{path}.layer", f"a logit node's layer must be {n_layers + 1} (n_layers + 1)")
        return None
    return out, node_id, feature
