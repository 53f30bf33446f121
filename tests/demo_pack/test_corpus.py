"""The corpus generator is deterministic and its held-out splits really are held out."""

import itertools
import re

from inference.demo_pack import word_lists as words
from inference.demo_pack.corpus import (
    CorpusConfig,
    Sentence,
    evaluation_sets,
    held_out_addition_pairs,
    sentences,
)
from inference.demo_pack.tokenizer import train_tokenizer

N_SENTENCES = 40_000


def _sample(seed: int = 0, split: str = "train", n: int = N_SENTENCES) -> list[Sentence]:
    return list(itertools.islice(sentences(CorpusConfig(seed=seed), split), n))


def test_the_same_seed_gives_the_same_sentences() -> None:
    assert _sample(n=2000) == _sample(n=2000)


def test_other_seeds_and_splits_give_other_sentences() -> None:
    assert _sample(n=200) != _sample(seed=1, n=200)
    assert _sample(n=200) != _sample(split="dashboards", n=200)


def test_every_family_occurs() -> None:
    assert {s.family for s in _sample(n=2000)} == {
        "facts",
        "two_hop",
        "ioi",
        "opposites",
        "addition",
        "filler",
    }


def test_held_out_names_never_occur_in_indirect_object_sentences() -> None:
    held_out = set(words.IOI_HELD_OUT_NAMES)
    ioi = [s.text for s in _sample() if s.family == "ioi"]
    assert ioi
    for text in ioi:
        assert not held_out & set(re.findall(r"\w+", text)), text


def test_held_out_names_are_still_seen_in_filler_so_their_embeddings_train() -> None:
    filler = " ".join(s.text for s in _sample() if s.family == "filler")
    for name in words.IOI_HELD_OUT_NAMES:
        assert f" {name}" in filler


def test_held_out_cities_never_occur_in_two_hop_sentences() -> None:
    two_hop = [s.text for s in _sample() if "state containing" in s.text]
    assert two_hop
    for text in two_hop:
        for city in words.TWO_HOP_HELD_OUT_CITIES:
            assert f"containing {city} is" not in text, text


def test_held_out_cities_still_have_their_state_sentence() -> None:
    texts = {s.text for s in _sample()}
    states = {c: s for s, (_, cities) in words.US_STATES.items() for c in cities}
    for city in words.TWO_HOP_HELD_OUT_CITIES:
        assert f"{city} is in {states[city]}." in texts


def test_held_out_addition_pairs_never_occur_in_either_order() -> None:
    held_out = held_out_addition_pairs(CorpusConfig())
    assert held_out
    assert all((b, a) in held_out for a, b in held_out)
    for s in _sample():
        if s.family == "addition":
            a, b = map(int, re.findall(r"\d+", s.text)[:2])
            assert (a, b) not in held_out, s.text


def test_held_out_evaluation_sets_use_only_held_out_items() -> None:
    config = CorpusConfig()
    sets = evaluation_sets(config)
    held_out_names = set(words.IOI_HELD_OUT_NAMES)
    for item in sets["ioi_held_out"]:
        names = set(re.findall(r"[A-Z]\w+", item.prompt)) - {"When"}
        assert names <= held_out_names, item
    pairs = held_out_addition_pairs(config)
    for item in sets["addition_held_out"]:
        a, b = map(int, re.findall(r"\d+", item.prompt))
        assert (a, b) in pairs
    for item in sets["two_hop_held_out"]:
        assert any(f"containing {c} is" in item.prompt for c in words.TWO_HOP_HELD_OUT_CITIES)


def test_the_tokenizer_is_deterministic_and_prepends_bos() -> None:
    documents = [s.text for s in _sample(n=3000)]
    first = train_tokenizer(documents, vocab_size=512)
    second = train_tokenizer(documents, vocab_size=512)
    assert first.get_vocab() == second.get_vocab()
    ids = first.encode("The capital of France is")
    assert ids[0] == first.bos_token_id
