"""Synthetic attribution graphs in the circuit-tracer / Neuronpedia JSON schema, for the
explorer's browser tests and benchmark: embeddings at every position, an error node per
(layer, position), features spread over layers and positions, a few logits at the last position,
and links that only go upwards (to a later layer, same or later position)."""

from __future__ import annotations

import random
from typing import Any

from contract.node_ids import cantor_pair

WORDS = [
    "Texas",
    "capital",
    "Austin",
    "state",
    "city",
    "river",
    "dog",
    "cat",
    "animal",
    "say",
    "number",
    "plus",
    "code",
    "bracket",
    "rhyme",
    "past",
    "tense",
    "French",
    "English",
    "negation",
    "quote",
    "name",
    "place",
]


def synthetic_graph(
    n_nodes: int,
    n_links: int,
    *,
    n_layers: int = 16,
    n_pos: int = 12,
    n_logits: int = 8,
    seed: int = 0,
    slug: str = "synthetic",
) -> dict[str, Any]:
    rng = random.Random(seed)
    tokens = ["<bos>", *(f" {rng.choice(WORDS)}" for _ in range(n_pos - 1))]
    last = n_pos - 1
    nodes: list[dict[str, Any]] = []
    rows: list[int] = []  # 0 = embeddings, layer + 1, n_layers + 1 = logits
    positions: list[int] = []

    def add(node: dict[str, Any], row: int) -> None:
        nodes.append(node)
        rows.append(row)
        positions.append(node["ctx_idx"])

    for pos, _token in enumerate(tokens):
        add(_node(f"E_{100 + pos}_{pos}", None, "E", pos, "embedding", ""), 0)
    for layer in range(n_layers):
        for pos in range(n_pos):
            add(
                _node(f"{layer}_-1_{pos}", -1, str(layer), pos, "mlp reconstruction error", ""),
                layer + 1,
            )
    n_features = max(0, n_nodes - len(nodes) - n_logits)
    used: set[tuple[int, int, int]] = set()
    while len(used) < n_features:
        layer = rng.randrange(n_layers)
        pos = rng.randrange(n_pos)
        index = rng.randrange(16384)
        if (layer, index, pos) in used:
            continue
        used.add((layer, index, pos))
        label = f"{rng.choice(WORDS)} {rng.choice(WORDS)} L{layer}/{index}"
        node = _node(
            f"{layer}_{index}_{pos}",
            cantor_pair(layer, index),
            str(layer),
            pos,
            "cross layer transcoder",
            label,
        )
        node["activation"] = round(rng.uniform(0.1, 12.0), 4)
        add(node, layer + 1)
    probs = sorted((rng.random() for _ in range(n_logits)), reverse=True)
    total = sum(probs) * 1.2
    for k, p in enumerate(probs):
        word = rng.choice(WORDS)
        prob = round(p / total, 4)
        node = _node(
            f"{n_layers + 1}_{500 + k}_{last}",
            None,
            str(n_layers + 1),
            last,
            "logit",
            f'Output " {word}" (p={prob})',
        )
        node["token_prob"] = prob
        node["is_target_logit"] = k == 0
        add(node, n_layers + 1)

    # Cumulative influence: a random ranking of features and errors, 0 = most influential.
    prunable = [
        i for i, node in enumerate(nodes) if node["feature_type"] not in ("embedding", "logit")
    ]
    rng.shuffle(prunable)
    for rank, i in enumerate(prunable):
        nodes[i]["influence"] = round((rank + 1) / len(prunable), 6)

    by_row: dict[int, list[int]] = {}
    for i, row in enumerate(rows):
        by_row.setdefault(row, []).append(i)
    sources = [i for i, row in enumerate(rows) if row <= n_layers]
    logits = by_row.get(n_layers + 1, [])
    links: list[dict[str, Any]] = []
    seen: set[tuple[int, int]] = set()
    attempts = 0
    while len(links) < n_links and attempts < n_links * 20:
        attempts += 1
        s = rng.choice(sources)
        if rng.random() < 0.15 and logits:
            t = rng.choice(logits)
        else:
            row = rng.randint(rows[s] + 1, n_layers + 1)
            t = rng.choice(by_row[row])
        if positions[t] < positions[s] or (s, t) in seen:
            continue
        seen.add((s, t))
        weight = rng.gauss(0, 1) * (3 if rng.random() < 0.05 else 1)
        links.append(
            {
                "source": nodes[s]["node_id"],
                "target": nodes[t]["node_id"],
                "weight": round(weight, 5),
            }
        )
    return {
        "metadata": {
            "slug": slug,
            "scan": "synthetic",
            "prompt": "".join(tokens[1:]).strip(),
            "prompt_tokens": tokens,
            "node_threshold": 0.8,
            "schema_version": 1,
        },
        "qParams": {
            "pinnedIds": [],
            "supernodes": [],
            "linkType": "both",
            "clickedId": "",
            "sg_pos": "",
        },
        "nodes": nodes,
        "links": links,
    }


def _node(
    node_id: str, feature: int | None, layer: str, pos: int, kind: str, clerp: str
) -> dict[str, Any]:
    return {
        "node_id": node_id,
        "feature": feature,
        "layer": layer,
        "ctx_idx": pos,
        "feature_type": kind,
        "jsNodeId": node_id,
        "clerp": clerp,
        "influence": None,
        "activation": None,
        "token_prob": 0.0,
        "is_target_logit": False,
    }
