"""POST /graphs/{model}/{slug}/supernode-suggestions: who may ask, what comes back, bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import save_file

from features.models import Feature
from tests.api.conftest import make_graph
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

FEATURES = [(0, 7, 2), (0, 8, 2), (1, 9, 2)]
URL = "/api/v1/graphs/tiny/cat/supernode-suggestions"


def ask(user: Any, body: Any = None, url: str = URL) -> Any:
    return client_for(user).post(url, body if body is not None else {}, format="json")


def test_anyone_who_can_see_the_graph_gets_suggestions(alice: Any, bob: Any, model: Any) -> None:
    make_graph(alice, features=FEATURES, visibility="unlisted")
    response = ask(bob)
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["n_candidates"] == 3
    assert body["signals"] == {"decoder": False, "explanation": False, "logits": False}
    (only,) = body["suggestions"]
    assert only["members"] == ["0_7_2", "0_8_2", "1_9_2"]
    assert only["layers"] == [0, 1]
    assert only["positions"] == [2, 2]
    assert 0 <= only["confidence"] <= 1
    assert only["name"] == "L0–L1 at “cat” features"
    assert "load;dur=" in response["Server-Timing"]


def test_a_private_graph_is_a_404_to_others_and_answers_its_owner(
    alice: Any, charlie: Any, model: Any
) -> None:
    make_graph(alice, features=FEATURES, visibility="private")
    assert ask(charlie).status_code == 404
    assert ask(None).status_code == 404
    assert ask(alice).status_code == 200


def test_only_the_pinned_nodes_are_grouped(alice: Any, model: Any) -> None:
    make_graph(alice, features=FEATURES)
    body = ask(alice, {"node_ids": ["0_7_2", "0_8_2", "E_10_0", "9_9_9"]}).json()
    assert body["n_candidates"] == 2
    assert [s["members"] for s in body["suggestions"]] == [["0_7_2", "0_8_2"]]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"node_ids": "0_7_2"}, "node_ids"),
        ({"node_ids": ["x" * 101]}, "node_ids[0]"),
        ({"node_ids": ["0_7_2"] * 5001}, "node_ids"),
        ({"threshold": 1.5}, "threshold"),
        ({"threshold": "high"}, "threshold"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(
    alice: Any, model: Any, body: dict[str, Any], field: str
) -> None:
    make_graph(alice, features=FEATURES)
    response = ask(alice, body)
    assert response.status_code == 400
    assert field in response.json()["detail"], response.json()


def test_a_higher_threshold_gives_fewer_groups(alice: Any, model: Any) -> None:
    make_graph(alice, features=FEATURES)
    assert ask(alice, {"threshold": 0.0}).json()["suggestions"]
    body = ask(alice, {"threshold": 1.0}).json()
    assert body["threshold"] == 1.0
    assert all(s["confidence"] >= 0.99 for s in body["suggestions"])


def test_decoders_and_top_logits_are_used_when_the_set_has_them(
    alice: Any, model: Any, tset: Any, tmp_path: Path
) -> None:
    rng = np.random.default_rng(0)
    for layer in (0, 1):
        w = rng.standard_normal((16, 4)).astype(np.float32)
        save_file({"W_dec": w}, str(tmp_path / f"layer_{layer}.safetensors"))
    tset.source = str(tmp_path)
    tset.save(update_fields=["source"])
    for layer, index, _ in FEATURES:
        Feature.objects.create(
            transcoder_set=tset, layer=layer, index=index, top_logits=[" mat", " rug", f" {index}"]
        )
    make_graph(alice, features=FEATURES)
    body = ask(alice, {"threshold": 0.0}).json()
    assert body["signals"] == {"decoder": True, "explanation": False, "logits": True}
    (group,) = body["suggestions"]
    assert group["evidence"]["decoder"] is not None
    assert group["name"] == "says mat / rug"


def test_an_unreadable_weights_file_costs_only_the_decoder_signal(
    alice: Any, model: Any, tset: Any, tmp_path: Path
) -> None:
    (tmp_path / "layer_0.safetensors").write_bytes(b"garbage!" * 8)
    tset.source = str(tmp_path)
    tset.save(update_fields=["source"])
    make_graph(alice, features=FEATURES)
    response = ask(alice)
    assert response.status_code == 200
    assert response.json()["signals"]["decoder"] is False


def test_an_unknown_graph_is_a_404(alice: Any, model: Any) -> None:
    assert ask(alice, url="/api/v1/graphs/tiny/nope/supernode-suggestions").status_code == 404
