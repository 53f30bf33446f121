"""The engine's intervention and steering results as the JSON kept on a SteeringRun.

The shapes are documented in docs/steering.md; the API's serializers (steering/responses.py)
describe them to the OpenAPI schema.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from inference.engine import InterventionResult, ReplacementModel


def _token_texts(rm: ReplacementModel, ids: Any) -> list[dict[str, Any]]:
    return [{"id": int(i), "text": rm.decode_token(int(i))} for i in ids]


def _by_feature(activations: Any) -> dict[tuple[int, ...], float]:
    """(layer, position, feature) -> value, from the engine's FeatureActivations."""
    keys, values = activations.features.tolist(), activations.values.tolist()
    return {tuple(key): float(value) for key, value in zip(keys, values, strict=True)}


def _activation_changes(result: Any, limit: int = 100) -> list[dict[str, Any]]:
    """Features whose activation the run changed, largest change first (at most ``limit``)."""
    clean, after = _by_feature(result.clean_activations), _by_feature(result.activations)
    rows = []
    for key in clean.keys() | after.keys():
        before, now = clean.get(key, 0.0), after.get(key, 0.0)
        if before != now:
            rows.append(
                {"layer": key[0], "position": key[1], "feature": key[2], "clean": before,
                 "value": now}
            )  # fmt: skip
    rows.sort(key=lambda r: (-abs(r["value"] - r["clean"]), r["layer"], r["position"]))
    return rows[:limit]


def _continuation(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "text": data["text"],
        "tokens": [
            {
                "id": t["token"],
                "text": t["text"],
                "probability": t["probability"],
                "top": [
                    {"id": i, "text": text, "probability": p}
                    for i, text, p in zip(
                        t["top_tokens"], t["top_texts"], t["top_probabilities"], strict=True
                    )
                ],
            }
            for t in data["tokens"]
        ],
    }


def intervention_json(
    rm: ReplacementModel, result: InterventionResult, *, top_k: int, logit_tokens: list[Any]
) -> dict[str, Any]:
    """An intervene job's result: the prompt's tokens, the logit table, the changed features."""
    return {
        "input_tokens": _token_texts(rm, result.input_tokens.tolist()),
        "logits": result.logit_table(top_k, logit_tokens, rm.decode_token),
        "activations": _activation_changes(result),
    }


def steering_json(rm: ReplacementModel, steered: dict[str, Any]) -> dict[str, Any]:
    """A steer job's result (``SteeringResult.to_dict()``): both continuations, token by token."""
    return {
        "input_tokens": _token_texts(rm, steered["input_tokens"]),
        "default": _continuation(steered["default"]),
        "steered": _continuation(steered["steered"]),
    }
