"""The next-token distribution after a prompt: one forward pass, softmax, the top k.

The generate page's tokenize preview shows these before a graph is asked for.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .replacement import ReplacementModel


@dataclass(frozen=True)
class NextToken:
    id: int
    probability: float
    # This token's probability plus that of every more likely one.
    cumulative: float


def top_next_tokens(rm: ReplacementModel, ids: torch.Tensor, k: int) -> list[NextToken]:
    """The ``k`` most likely tokens after the 1-d token ids ``ids``, most likely first."""
    with torch.no_grad():
        logits = rm.model(ids[None].to(rm.device)).logits[0, -1].float()
    probs = torch.softmax(logits, dim=-1)
    top_p, top_ids = torch.topk(probs, min(k, probs.shape[0]))
    cumulative = torch.cumsum(top_p, 0)
    return [
        NextToken(id=int(i), probability=float(p), cumulative=float(c))
        for i, p, c in zip(top_ids, top_p, cumulative, strict=True)
    ]
