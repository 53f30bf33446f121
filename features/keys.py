"""Feature keys: circuit-tracer's Cantor-paired feature id and the ``L12/3456`` short form.

Pure Python (no Django), so graphs/schema.py and importers can share it.
"""

from __future__ import annotations

import math
import re

_SHORT = re.compile(r"^\s*L?(\d{1,5})\s*[/:_]\s*(\d{1,10})\s*$", re.IGNORECASE)


def cantor(layer: int, index: int) -> int:
    """circuit-tracer's ``feature`` field: the Cantor pairing of (layer, index)."""
    return (layer + index) * (layer + index + 1) // 2 + index


def uncantor(value: int) -> tuple[int, int]:
    """(layer, index) from a Cantor-paired feature id."""
    w = (math.isqrt(8 * value + 1) - 1) // 2
    index = value - w * (w + 1) // 2
    return w - index, index


def parse_short(text: str) -> tuple[int, int] | None:
    """``L12/3456`` (or ``12/3456``, ``12_3456``) as (layer, index); None when it is not one."""
    match = _SHORT.match(text)
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2))
