"""Shared fixtures: one tiny Llama with per-layer transcoders, attributed once per module."""

from __future__ import annotations

from pathlib import Path

import pytest

from inference.engine import Graph, ReplacementModel, attribute, load_transcoders

from .builders import save_plt, tiny_model

PROMPT = [5, 9, 7, 12, 30, 8]


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> ReplacementModel:
    config = save_plt(Path(tmp_path_factory.mktemp("tc")), jumprelu=True)
    return ReplacementModel.from_parts(tiny_model("llama"), load_transcoders(config))


@pytest.fixture(scope="module")
def llama_graph(llama: ReplacementModel) -> Graph:
    return attribute(PROMPT, llama, batch_size=32)
