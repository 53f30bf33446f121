"""Small schema-v1 graph documents whose differences are known by construction."""

from __future__ import annotations

from typing import Any

N_LAYERS = 4
LOGIT_LAYER = N_LAYERS + 1

# (layer, index, position) -> (activation, influence)
Features = dict[tuple[int, int, int], tuple[float, float]]


def feature_id(layer: int, index: int, pos: int) -> str:
    return f"{layer}_{index}_{pos}"


def document(
    tokens: list[str],
    features: Features,
    links: dict[tuple[str, str], float] | None = None,
    *,
    logits: dict[int, float] | None = None,
    token_ids: list[int] | None = None,
) -> dict[str, Any]:
    """A graph: an embedding per token (vocabulary id from ``token_ids``, else 100 + position),
    the features, an error node at layer 1 of the last position and the logits (vocabulary id ->
    probability) at the last position; ``links`` by (source id, target id)."""
    ids = token_ids if token_ids is not None else [100 + pos for pos in range(len(tokens))]
    last = len(tokens) - 1
    nodes: list[dict[str, Any]] = [
        {
            "node_id": f"E_{ids[pos]}_{pos}",
            "feature": pos,
            "layer": "E",
            "ctx_idx": pos,
            "feature_type": "embedding",
            "clerp": "",
            "influence": None,
        }
        for pos in range(len(tokens))
    ]
    for (layer, index, pos), (activation, influence) in features.items():
        nodes.append(
            {
                "node_id": feature_id(layer, index, pos),
                "feature": 0,
                "layer": str(layer),
                "ctx_idx": pos,
                "feature_type": "cross layer transcoder",
                "clerp": f"L{layer}/{index}",
                "influence": influence,
                "activation": activation,
            }
        )
    nodes.append(
        {
            "node_id": f"1_-1_{last}",
            "feature": -1,
            "layer": "1",
            "ctx_idx": last,
            "feature_type": "mlp reconstruction error",
            "clerp": "",
            "influence": 0.9,
        }
    )
    for vocab, probability in (logits if logits is not None else {55: 0.5}).items():
        nodes.append(
            {
                "node_id": f"{LOGIT_LAYER}_{vocab}_{last}",
                "feature": vocab,
                "layer": str(LOGIT_LAYER),
                "ctx_idx": last,
                "feature_type": "logit",
                "clerp": f"Output {vocab}",
                "token_prob": probability,
                "is_target_logit": False,
            }
        )
    return {
        "metadata": {
            "slug": "built",
            "scan": "tiny",
            "prompt": "".join(tokens[1:]),
            "prompt_tokens": tokens,
            "node_threshold": 0.8,
        },
        "qParams": {"pinnedIds": [], "supernodes": [], "linkType": "both"},
        "nodes": nodes,
        "links": [{"source": s, "target": t, "weight": w} for (s, t), w in (links or {}).items()],
    }
