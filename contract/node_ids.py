"""Node ids of schema-v1 graph JSON, and the Cantor pairing in a feature node's ``feature``.

A node's kind comes from its ``feature_type``; its id then reads:

=======  ========================================  ===================================
kind     feature_type                              node_id
=======  ========================================  ===================================
feature  ``cross layer transcoder`` (also          ``{layer}_{index}_{pos}``
         ``transcoder``, ``per layer transcoder``)
error    ``mlp reconstruction error``              ``{layer}_-1_{pos}``
token    ``embedding``                             ``E_{token_id}_{pos}``
logit    ``logit``                                 ``{n_layers + 1}_{vocab_id}_{pos}``
=======  ========================================  ===================================

An error id in the older form ``0_{layer}_{pos}`` (which reads like a feature id, hence the
new one) is accepted and rewritten to ``{layer}_-1_{pos}`` on import. A feature node's
``feature`` field is ``cantor_pair(layer, index)``, as circuit-tracer and Neuronpedia number
features; a logit's ``vocab_id`` is ``vocab_size + i`` for the i-th custom target.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    FEATURE = "feature"
    ERROR = "error"
    TOKEN = "token"
    LOGIT = "logit"


FEATURE_TYPE = "cross layer transcoder"  # what the engine writes
FEATURE_TYPES = (FEATURE_TYPE, "transcoder", "per layer transcoder")
ERROR_TYPE = "mlp reconstruction error"
EMBEDDING_TYPE = "embedding"
LOGIT_TYPE = "logit"
KNOWN_TYPES = (*FEATURE_TYPES, ERROR_TYPE, EMBEDDING_TYPE, LOGIT_TYPE)

# Ten digits bound every number before int() sees it; ranges are the validator's business.
_TRIPLE = re.compile(r"(\d{1,10})_(-1|\d{1,10})_(\d{1,10})")
_TOKEN = re.compile(r"E_(\d{1,10})_(\d{1,10})")


def kind_of(feature_type: object) -> Kind | None:
    """The kind of a node with this ``feature_type``; None for a type schema v1 does not know."""
    if feature_type in FEATURE_TYPES:
        return Kind.FEATURE
    return {ERROR_TYPE: Kind.ERROR, EMBEDDING_TYPE: Kind.TOKEN, LOGIT_TYPE: Kind.LOGIT}.get(
        feature_type if isinstance(feature_type, str) else ""
    )


@dataclass(frozen=True)
class NodeId:
    kind: Kind
    layer: int | None  # transcoder layer; n_layers + 1 for a logit; None for a token
    number: int  # feature index, token id or vocab id; -1 for an error
    pos: int  # prompt position

    def __str__(self) -> str:
        """The canonical id."""
        if self.kind is Kind.TOKEN:
            return token_id(self.number, self.pos)
        return f"{self.layer}_{self.number}_{self.pos}"


def feature_id(layer: int, index: int, pos: int) -> str:
    return f"{layer}_{index}_{pos}"


def error_id(layer: int, pos: int) -> str:
    return f"{layer}_-1_{pos}"


def legacy_error_id(layer: int, pos: int) -> str:
    """The older spelling of an error id, still found in files and URLs."""
    return f"0_{layer}_{pos}"


def token_id(token: int, pos: int) -> str:
    return f"E_{token}_{pos}"


def logit_id(layer: int, vocab_id: int, pos: int) -> str:
    return f"{layer}_{vocab_id}_{pos}"


def parse_node_id(node_id: str, kind: Kind) -> NodeId | None:
    """The parts of ``node_id`` read as a ``kind`` node; None when it does not fit that kind.

    A legacy error id ``0_{layer}_{pos}`` parses to its layer, so ``str()`` of the result is
    the canonical id.
    """
    if kind is Kind.TOKEN:
        token = _TOKEN.fullmatch(node_id)
        return NodeId(kind, None, int(token[1]), int(token[2])) if token else None
    match = _TRIPLE.fullmatch(node_id)
    if match is None:
        return None
    first, middle, pos = int(match[1]), int(match[2]), int(match[3])
    if kind is Kind.ERROR:
        if middle == -1:
            return NodeId(kind, first, -1, pos)
        return NodeId(kind, middle, -1, pos) if first == 0 else None
    return NodeId(kind, first, middle, pos) if middle >= 0 else None


def cantor_pair(layer: int, index: int) -> int:
    """circuit-tracer's ``feature`` number of the feature (layer, index)."""
    return (layer + index) * (layer + index + 1) // 2 + index


def cantor_unpair(value: int) -> tuple[int, int]:
    """(layer, index) from a Cantor-paired feature number."""
    w = (math.isqrt(8 * value + 1) - 1) // 2
    index = value - w * (w + 1) // 2
    return w - index, index
