"""Fixtures for API tests: a small model with a transcoder set and helpers that build graph JSON
(the users and `client_for` are in tests/conftest.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache

from features.models import LanguageModel, TranscoderSet
from graphs import services
from graphs.models import Graph

N_LAYERS = 4


@pytest.fixture(autouse=True)
def _isolated(settings: Any, tmp_path: Any) -> Any:
    settings.MEDIA_ROOT = str(tmp_path / "media")
    cache.clear()  # throttle counters
    yield
    cache.clear()


@pytest.fixture
def model(db: Any) -> LanguageModel:
    lm = LanguageModel.objects.create(
        slug="tiny", display_name="Tiny", n_layers=N_LAYERS, d_model=16, vocab_size=100
    )
    ts = TranscoderSet.objects.create(model=lm, slug="plt", features_per_layer=1000)
    lm.default_transcoder_set = ts
    lm.save(update_fields=["default_transcoder_set"])
    return lm


@pytest.fixture
def tset(model: LanguageModel) -> TranscoderSet:
    return model.transcoder_sets.get(slug="plt")


def graph_json(
    *,
    features: list[tuple[int, int, int]] | None = None,
    prompt_tokens: tuple[str, ...] = ("<bos>", "The", " cat"),
    old_error_ids: bool = False,
    label: str = "",
    slug: str = "cat",
) -> dict[str, Any]:
    """A small valid graph: tokens, features (layer, index, pos), one error node, one logit."""
    features = features if features is not None else [(0, 7, 1), (2, 42, 2)]
    last = len(prompt_tokens) - 1
    nodes: list[dict[str, Any]] = []
    for pos, _ in enumerate(prompt_tokens):
        nodes.append(
            {
                "node_id": f"E_{pos + 10}_{pos}",
                "feature": pos,
                "layer": "E",
                "ctx_idx": pos,
                "feature_type": "embedding",
                "jsNodeId": f"E_{pos + 10}-{pos}",
                "clerp": "",
            }
        )
    for i, (layer, index, pos) in enumerate(features):
        nodes.append(
            {
                "node_id": f"{layer}_{index}_{pos}",
                "feature": 0,
                "layer": str(layer),
                "ctx_idx": pos,
                "feature_type": "cross layer transcoder",
                "jsNodeId": f"{layer}_{index}-0",
                "clerp": label if i == 0 else "",
                "influence": 0.1 * (i + 1),
                "activation": 2.5 + i,
            }
        )
    error_id = f"0_1_{last}" if old_error_ids else f"1_-1_{last}"
    nodes.append(
        {
            "node_id": error_id,
            "feature": None,
            "layer": "1",
            "ctx_idx": last,
            "feature_type": "mlp reconstruction error",
            "jsNodeId": "err",
            "clerp": "",
            "influence": 0.5,
        }
    )
    logit_id = f"{N_LAYERS + 1}_55_{last}"
    nodes.append(
        {
            "node_id": logit_id,
            "feature": 55,
            "layer": str(N_LAYERS + 1),
            "ctx_idx": last,
            "feature_type": "logit",
            "jsNodeId": "L_55-0",
            "clerp": 'Output " mat" (p=0.5)',
            "token_prob": 0.5,
            "is_target_logit": True,
        }
    )
    links = (
        [
            {
                "source": "E_10_0",
                "target": f"{features[0][0]}_{features[0][1]}_{features[0][2]}",
                "weight": 1.5,
            }
        ]
        if features
        else []
    )
    for layer, index, pos in features:
        links.append({"source": f"{layer}_{index}_{pos}", "target": logit_id, "weight": -0.75})
    links.append({"source": error_id, "target": logit_id, "weight": 0.25})
    return {
        "metadata": {
            "slug": slug,
            "scan": "tiny",
            "prompt": "".join(prompt_tokens[1:]),
            "prompt_tokens": list(prompt_tokens),
            "node_threshold": 0.8,
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


def make_graph(
    owner: User | None, *, slug: str = "cat", visibility: str = "public", **kwargs: Any
) -> Graph:
    data = json.dumps(graph_json(slug=slug, **kwargs)).encode()
    return services.import_graph_bytes(
        data, model_slug="tiny", slug=slug, owner=owner, visibility=visibility
    )
