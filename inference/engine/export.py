"""Graph artifacts: circuit-tracer/Neuronpedia JSON (schema v1) and raw safetensors.

The schema, its validator and the node-id grammar are the contract's (``contract.graph_json``,
``contract.node_ids``; docs/graph-format.md); this module writes graphs that fit them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from contract.graph_json import SCHEMA_VERSION, GraphFormatError
from contract.node_ids import (
    EMBEDDING_TYPE,
    ERROR_TYPE,
    FEATURE_TYPE,
    LOGIT_TYPE,
    cantor_pair,
    error_id,
    feature_id,
    logit_id,
    token_id,
)
from contract.params import AttributeParams

from .graph import Graph
from .pruning import PruneResult, prune

GENERATOR = {"name": "circuit-atlas", "version": "0.1.0"}
RAW_FORMAT = "circuit-atlas-raw/2"
# Version 1 held the (N, N) adjacency, zero rows included; 2 holds its non-zero rows.
_RAW_FORMAT_1 = "circuit-atlas-raw/1"
_RAW_TENSORS = (
    "target_rows",
    "active_features",
    "selected_features",
    "activation_values",
    "logit_tokens",
    "logit_probabilities",
    "input_tokens",
)


def _display(token: str) -> str:
    return token.replace("\n", "⏎").replace("\t", "→").replace("\r", "↵")


def _node(node_id: str, feature: int, layer: str, ctx_idx: int, kind: str, **extra: Any) -> dict:
    return {
        "node_id": node_id,
        "feature": feature,
        "layer": layer,
        "ctx_idx": ctx_idx,
        "feature_type": kind,
        "jsNodeId": extra.pop("jsNodeId", node_id),
        "clerp": extra.pop("clerp", ""),
        "influence": extra.pop("influence", None),
        "activation": extra.pop("activation", None),
        "token_prob": extra.pop("token_prob", 0.0),
        "is_target_logit": extra.pop("is_target_logit", False),
        "run_idx": 0,
        "reverse_ctx_idx": 0,
    }


def _nodes(graph: Graph, keep: torch.Tensor, influence: torch.Tensor) -> dict[int, dict]:
    nodes: dict[int, dict] = {}
    for idx in keep.nonzero().squeeze(1).tolist():
        inf = float(influence[idx])
        if idx < graph.error_offset:
            active = int(graph.selected_features[idx])
            layer, pos, feat = graph.active_features[active].tolist()
            nodes[idx] = _node(
                feature_id(layer, feat, pos),
                cantor_pair(layer, feat),
                str(layer),
                pos,
                FEATURE_TYPE,
                jsNodeId=f"{layer}_{feat}-0",
                influence=inf,
                activation=float(graph.activation_values[active]),
            )
        elif idx < graph.token_offset:
            layer, pos = divmod(idx - graph.error_offset, graph.n_pos)
            nodes[idx] = _node(error_id(layer, pos), -1, str(layer), pos, ERROR_TYPE, influence=inf)
        elif idx < graph.logit_offset:
            pos = idx - graph.token_offset
            tok = int(graph.input_tokens[pos])
            nodes[idx] = _node(
                token_id(tok, pos),
                pos,
                "E",
                pos,
                EMBEDDING_TYPE,
                jsNodeId=f"E_{tok}-{pos}",
                influence=inf,
            )
        else:
            i = idx - graph.logit_offset
            vocab_id, prob, last = (
                int(graph.logit_tokens[i]),
                float(graph.logit_probabilities[i]),
                graph.n_pos - 1,
            )
            nodes[idx] = _node(
                logit_id(graph.n_layers + 1, vocab_id, last),
                vocab_id,
                str(graph.n_layers + 1),
                last,
                LOGIT_TYPE,
                jsNodeId=f"L_{vocab_id}-{last}",
                clerp=f'Output "{_display(graph.logit_labels[i])}" (p={prob:.3f})',
                token_prob=prob,
                is_target_logit=i == 0,
                influence=inf,
            )
    return nodes


def graph_to_json(
    graph: Graph,
    pruned: PruneResult | None = None,
    *,
    slug: str,
    node_threshold: float = AttributeParams.node_threshold,
    edge_threshold: float = AttributeParams.edge_threshold,
    scan: str | None = None,
    create_time_ms: int | None = None,
) -> dict[str, Any]:
    """The pruned graph as a circuit-tracer/Neuronpedia schema-v1 dict (json.dumps-ready)."""
    if pruned is None:
        pruned = prune(graph, node_threshold=node_threshold, edge_threshold=edge_threshold)
    nodes = _nodes(graph, pruned.node_mask, pruned.influence)
    links = []
    connected: set[int] = set()
    for t, s, w in zip(
        pruned.edge_targets.tolist(),
        pruned.edge_sources.tolist(),
        pruned.edge_weights.tolist(),
        strict=True,
    ):
        if t in nodes and s in nodes:
            links.append(
                {"source": nodes[s]["node_id"], "target": nodes[t]["node_id"], "weight": w}
            )
            connected.update((t, s))
    used = [
        node
        for idx, node in nodes.items()
        if idx in connected or node["feature_type"] in (EMBEDDING_TYPE, LOGIT_TYPE)
    ]
    metadata = {
        "slug": slug,
        "scan": scan if scan is not None else (graph.scan or ""),
        "transcoder_list": [],
        "prompt_tokens": [_display(t) for t in graph.input_token_strings],
        "prompt": graph.input_string,
        "node_threshold": node_threshold,
        "schema_version": SCHEMA_VERSION,
        "info": {
            "generator": GENERATOR,
            "create_time_ms": create_time_ms
            if create_time_ms is not None
            else int(time.time() * 1000),
            "model": graph.model_name,
        },
        "generation_settings": dict(graph.settings),
        "pruning_settings": {"node_threshold": node_threshold, "edge_threshold": edge_threshold},
        "scores": {
            "replacement_score": pruned.replacement_score,
            "completeness_score": pruned.completeness_score,
        },
    }
    q_params = {
        "pinnedIds": [],
        "supernodes": [],
        "linkType": "both",
        "clickedId": "",
        "sg_pos": "",
    }
    return {"metadata": metadata, "qParams": q_params, "nodes": used, "links": links}


def save_raw(graph: Graph, path: str | Path) -> None:
    """Full unpruned graph as safetensors (tensors + string metadata); never pickle."""
    tensors = {name: getattr(graph, name).contiguous() for name in _RAW_TENSORS}
    metadata = {
        "format": RAW_FORMAT,
        "input_string": graph.input_string,
        "input_token_strings": json.dumps(graph.input_token_strings),
        "logit_labels": json.dumps(graph.logit_labels),
        "n_layers": str(graph.n_layers),
        "vocab_size": str(graph.vocab_size),
        "scan": graph.scan or "",
        "model_name": graph.model_name,
        "settings": json.dumps(graph.settings),
    }
    save_file(tensors, str(path), metadata=metadata)


def _rows_of_square(tensors: dict[str, torch.Tensor], n_logits: int) -> torch.Tensor:
    """A version-1 file's (N, N) adjacency as the graph's rows: the features', then the logits'."""
    square = tensors.pop("adjacency")
    n, n_features = square.shape[0], len(tensors["selected_features"])
    return torch.cat([square[:n_features], square[n - n_logits :]])


def load_raw(path: str | Path) -> Graph:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if meta.get("format") not in (RAW_FORMAT, _RAW_FORMAT_1):
        raise GraphFormatError(f"{path} is not a {RAW_FORMAT} file")
    tensors = load_file(str(path))
    if meta["format"] == _RAW_FORMAT_1:
        tensors["target_rows"] = _rows_of_square(tensors, len(json.loads(meta["logit_labels"])))
    return Graph(
        input_string=meta["input_string"],
        input_token_strings=json.loads(meta["input_token_strings"]),
        logit_labels=json.loads(meta["logit_labels"]),
        n_layers=int(meta["n_layers"]),
        vocab_size=int(meta["vocab_size"]),
        scan=meta["scan"] or None,
        model_name=meta["model_name"],
        settings=json.loads(meta["settings"]),
        **{name: tensors[name] for name in _RAW_TENSORS},
    )
