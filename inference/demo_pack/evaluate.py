"""Greedy accuracy of the model on templated completions."""

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerFast

from inference.demo_pack.corpus import EvalItem


@torch.no_grad()
def greedy_correct(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, items: list[EvalItem]
) -> list[bool]:
    """For each item, whether greedy decoding from the prompt produces the whole answer.

    Checked in one teacher-forced pass: greedy decoding yields the answer exactly when the argmax
    at every answer position is the next answer token. Rows are right-padded, which a causal
    model never looks at.
    """
    prompts = [tokenizer.encode(item.prompt) for item in items]
    answers = [tokenizer.encode(item.answer, add_special_tokens=False) for item in items]
    width = max(len(p) + len(a) for p, a in zip(prompts, answers, strict=True))
    pad = tokenizer.pad_token_id
    assert pad is not None
    batch = torch.full((len(items), width), pad, dtype=torch.long)
    for i, (p, a) in enumerate(zip(prompts, answers, strict=True)):
        batch[i, : len(p) + len(a)] = torch.tensor(p + a)
    predicted = model(input_ids=batch).logits.argmax(-1)  # (n_items, width)
    correct = []
    for i, (p, a) in enumerate(zip(prompts, answers, strict=True)):
        # Logits at position t predict token t + 1.
        guesses = predicted[i, len(p) - 1 : len(p) - 1 + len(a)].tolist()
        correct.append(guesses == a)
    return correct


def accuracy_by_family(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerFast,
    sets: dict[str, list[EvalItem]],
) -> dict[str, float]:
    results = {}
    for family, items in sets.items():
        correct = greedy_correct(model, tokenizer, items)
        results[family] = sum(correct) / len(correct)
    return results
