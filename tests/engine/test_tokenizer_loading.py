"""load_tokenizer reads tokenizer.json only where that is AutoTokenizer's tokenizer: the same ids,
special tokens and decoding, checked against AutoTokenizer itself."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from transformers import AutoTokenizer
from transformers.models.gemma.tokenization_gemma import GemmaTokenizer
from transformers.tokenization_utils_tokenizers import TokenizersBackend

from inference.engine.tokenizer_loading import load_tokenizer

from . import gemma3_case as case
from .builders import save_tokenizer

TEXTS = [
    "The capital of France is",
    " leading space, trailing space ",
    "naïve café — 東京 🙂 ﬁ",
    "\n\n\ttabs\tand  double  spaces\r\n",
    "<bos>special<eos> tokens <pad> written <start_of_image> out",
    "def f(x):\n    return x ** 2  # code\n",
    "\x00\x01 control bytes \ufffd",
    "",
    " ",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
]


def assert_same_tokenizer(ours: Any, theirs: Any) -> None:
    for text in TEXTS:
        for special in (True, False):
            ids = theirs(text, add_special_tokens=special)["input_ids"]
            assert ours(text, add_special_tokens=special)["input_ids"] == ids, text
            for skip in (True, False):
                assert ours.decode(ids, skip_special_tokens=skip) == theirs.decode(
                    ids, skip_special_tokens=skip
                )
            assert ours.convert_ids_to_tokens(ids) == theirs.convert_ids_to_tokens(ids)
    assert ours(TEXTS)["input_ids"] == theirs(TEXTS)["input_ids"]
    for attribute in (
        "bos_token_id",
        "eos_token_id",
        "pad_token_id",
        "unk_token_id",
        "all_special_ids",
        "all_special_tokens",
        "padding_side",
        "truncation_side",
        "model_input_names",
        "model_max_length",
    ):
        assert getattr(ours, attribute) == getattr(theirs, attribute), attribute
    assert len(ours) == len(theirs)
    assert ours.added_tokens_decoder == theirs.added_tokens_decoder
    assert ours.backend_tokenizer.to_str() == theirs.backend_tokenizer.to_str()


@pytest.mark.optional_checkpoint(case.CHECKPOINT / "config.json", "make gemma3-270m")
def test_gemma3_is_read_from_its_file_and_is_autotokenizers_tokenizer() -> None:
    ours = load_tokenizer(str(case.CHECKPOINT))
    assert type(ours) is TokenizersBackend  # the cheap path, not GemmaTokenizer's rebuild
    theirs = AutoTokenizer.from_pretrained(case.CHECKPOINT)
    assert isinstance(theirs, GemmaTokenizer)
    assert_same_tokenizer(ours, theirs)
    assert ours("Hi")["input_ids"][0] == ours.bos_token_id == 2  # the special first token


def save_small_gemma(folder: Path) -> Path:
    """A GemmaTokenizer of a few dozen tokens and merges, saved as transformers saves one."""
    pieces = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "▁", "a", "b", "c", "T", "h", "e"]
    pieces += [f"<0x{i:02X}>" for i in range(256)]
    merges = [("a", "b"), ("ab", "c"), ("T", "h"), ("Th", "e"), ("▁", "a")]
    pieces += ["ab", "abc", "Th", "The", "▁a"]
    vocab = {p: i for i, p in enumerate(pieces)}
    # The BPE model takes pairs; transformers' annotation says strings.
    GemmaTokenizer(vocab=vocab, merges=merges).save_pretrained(folder)  # type: ignore[arg-type]
    return folder


def test_a_gemma_tokenizer_whose_file_matches_the_class_is_read_from_the_file(
    tmp_path: Path,
) -> None:
    folder = save_small_gemma(tmp_path / "tok")
    ours = load_tokenizer(str(folder))
    assert type(ours) is TokenizersBackend
    theirs = AutoTokenizer.from_pretrained(folder)
    assert_same_tokenizer(ours, theirs)
    # Gemma's pre-tokenizer keeps the space with the word before it: "The▁" "abc".
    assert ours.convert_ids_to_tokens(ours("The abc")["input_ids"]) == ["The", "▁", "abc"]


def test_a_file_with_other_components_than_its_class_goes_through_autotokenizer(
    tmp_path: Path,
) -> None:
    # GemmaTokenizer rebuilds its normalizer, so AutoTokenizer ignores the file's lowercasing;
    # reading the file would lowercase, so load_tokenizer must not.
    folder = save_small_gemma(tmp_path / "tok")
    path = folder / "tokenizer.json"
    spec = json.loads(path.read_text())
    spec["normalizer"] = {
        "type": "Sequence",
        "normalizers": [{"type": "Lowercase"}, spec["normalizer"]],
    }
    path.write_text(json.dumps(spec))
    ours = load_tokenizer(str(folder))
    assert isinstance(ours, GemmaTokenizer)
    assert ours("The")["input_ids"] == AutoTokenizer.from_pretrained(folder)("The")["input_ids"]


def test_a_tokenizer_without_a_rebuilding_class_goes_through_autotokenizer(tmp_path: Path) -> None:
    save_tokenizer(tmp_path / "tok")
    ours = load_tokenizer(str(tmp_path / "tok"))
    assert_same_tokenizer(ours, AutoTokenizer.from_pretrained(tmp_path / "tok"))
    assert ours("w5 w9", add_special_tokens=False)["input_ids"] == [5, 9]
