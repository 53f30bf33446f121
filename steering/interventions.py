"""Interventions as the user groups them, and the engine's flat list made from them.

A group (a supernode) shares one action and value among its member features; the engine takes
one entry per feature (inference/engine/interventions.py).
"""

from __future__ import annotations

from typing import Any


def members(item: dict[str, Any]) -> list[dict[str, Any]]:
    """The features one intervention acts on: a group's members, or the feature itself."""
    if "features" in item:
        return [dict(member) for member in item["features"]]
    return [{k: item[k] for k in ("layer", "position", "feature")}]


def expand(interventions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The engine's flat list: one entry per feature, a group's action copied to each member."""
    flat = []
    for item in interventions:
        for member in members(item):
            flat.append(
                {**member, "action": item["action"], "value": float(item.get("value", 0.0))}
            )
    return flat
