"""The parameters of an ``explain`` job: what the web side stores and the worker reads back.

Scope, exactly one of: ``features`` (``[[layer, index], ...]``; a graph's features are resolved
into this list when the job is made, so the job explains the graph as it was), ``layer`` (every
feature of one layer of the job's transcoder set) or ``whole_set``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from contract.params import Params

TOKEN_PATTERN = "token-pattern"
LLM = "llm"
METHODS = (TOKEN_PATTERN, LLM)  # autointerp.pipeline.METHODS, which the tests hold equal
MAX_FEATURES = 10_000  # features listed in one job (a layer or a whole set is not listed)


@dataclass(frozen=True, kw_only=True)
class ExplainParams(Params):
    kind: ClassVar[str] = "explain"

    method: str = TOKEN_PATTERN
    features: list[list[int]] = field(default_factory=list)
    graph: str = ""  # the slug of the graph the features came from, for the job's page
    layer: int | None = None
    whole_set: bool = False
    # Redo features that already have an explanation by this method and model; otherwise they
    # are skipped, which is also how a rerun resumes.
    replace: bool = False
