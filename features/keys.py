"""The ``L12/3456`` short form of a feature key, as people type it in search boxes and URLs.

Pure Python (no Django). The Cantor-paired ``feature`` number of graph files is in
``contract.node_ids``.
"""

from __future__ import annotations

import re

_SHORT = re.compile(r"^\s*L?(\d{1,5})\s*[/:_]\s*(\d{1,10})\s*$", re.IGNORECASE)


def parse_short(text: str) -> tuple[int, int] | None:
    """``L12/3456`` (or ``12/3456``, ``12_3456``) as (layer, index); None when it is not one."""
    match = _SHORT.match(text)
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2))
