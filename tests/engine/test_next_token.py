"""The tokenize preview's next-token distribution: the model's own softmax, most likely first."""

from __future__ import annotations

import torch

from inference.engine import ReplacementModel, top_next_tokens

from .conftest import PROMPT


def test_the_top_tokens_are_the_models_softmax_in_order(llama: ReplacementModel) -> None:
    ids = llama.tokenize(PROMPT)
    with torch.no_grad():
        logits = llama.model(ids[None].to(llama.device)).logits[0, -1].float()
    probs = torch.softmax(logits, dim=-1)
    expected = torch.argsort(probs, descending=True)[:5].tolist()

    top = top_next_tokens(llama, ids, 5)

    assert [t.id for t in top] == expected
    assert [t.probability for t in top] == [float(probs[i]) for i in expected]
    running = 0.0
    for t in top:
        running += t.probability
        assert abs(t.cumulative - running) < 1e-6


def test_asking_for_more_tokens_than_the_vocabulary_returns_the_whole_vocabulary(
    llama: ReplacementModel,
) -> None:
    ids = llama.tokenize(PROMPT)
    vocab = llama.model.config.vocab_size
    top = top_next_tokens(llama, ids, vocab + 10)
    assert len(top) == vocab
    assert abs(top[-1].cumulative - 1.0) < 1e-5
