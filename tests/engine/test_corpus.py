"""Corpus sources for dashboards: text, JSON lines, gzip, folders, and files that must be refused."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

from inference.engine.corpus import CorpusError, TokenizedCorpus, read_documents

from .builders import BOS, save_tokenizer


def test_a_text_file_is_one_document_per_line(tmp_path: Path) -> None:
    path = tmp_path / "lines.txt"
    path.write_text("first line\nsecond line\n\n")
    assert list(read_documents(path)) == ["first line", "second line"]


def test_a_text_file_with_blank_lines_between_text_is_paragraphs(tmp_path: Path) -> None:
    path = tmp_path / "paragraphs.txt"
    path.write_text("one a\none b\n\n\ntwo\n")
    assert list(read_documents(path)) == ["one a\none b", "two"]


def test_jsonl_and_gzip_and_folders_are_read_in_path_order(tmp_path: Path) -> None:
    folder = tmp_path / "corpus"
    folder.mkdir()
    with gzip.open(folder / "b.jsonl.gz", "wt", encoding="utf-8") as f:
        f.write(json.dumps({"text": "from jsonl", "id": 1}) + "\n\n")
    with gzip.open(folder / "a.txt.gz", "wt", encoding="utf-8") as f:
        f.write("from gzip text\n")
    (folder / "notes.md").write_text("ignored: not a corpus suffix")
    assert list(read_documents(folder)) == ["from gzip text", "from jsonl"]
    assert list(read_documents(folder / "b.jsonl.gz", text_field="text")) == ["from jsonl"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.txt", b"  \n", "empty"),
        ("binary.txt", b"abc\x00\x01\x02", "binary"),
        ("latin1.txt", "caf\u00e9\n".encode("latin-1"), "not UTF-8"),
        ("bad.jsonl", b'{"text": "ok"}\n{broken\n', "bad.jsonl:2: not valid JSON"),
        ("field.jsonl", b'{"body": "no text field"}\n', "no string field 'text'"),
        ("fake.txt.gz", b"not gzip at all", "cannot read"),
        ("data.csv", b"a,b\n", "unsupported corpus file"),
    ],
)
def test_bad_files_are_refused_with_the_file_named(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(CorpusError, match=message) as raised:
        list(read_documents(path))
    assert name in str(raised.value)


def test_a_missing_path_and_an_empty_folder_are_refused(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="not found"):
        list(read_documents(tmp_path / "nope.txt"))
    with pytest.raises(CorpusError, match=r"no \.txt"):
        list(read_documents(tmp_path))


def test_contexts_start_with_the_special_token_and_respect_the_budget(tmp_path: Path) -> None:
    save_tokenizer(tmp_path / "tok")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "tok")
    path = tmp_path / "c.txt"
    path.write_text(" ".join(f"w{i}" for i in range(4, 14)) + "\nw20 w21\n")
    corpus = TokenizedCorpus(path, tokenizer, special_token=BOS, context=5)
    rows = [r.tolist() for r in corpus]
    # A context never spans two documents: 10 tokens in rows of 4, then the second document.
    assert rows == [[BOS, 4, 5, 6, 7], [BOS, 8, 9, 10, 11], [BOS, 12, 13], [BOS, 20, 21]]
    assert [r.tolist() for r in corpus] == rows  # a second pass reads the same contexts
    assert corpus.n_tokens == 16
    capped = TokenizedCorpus(path, tokenizer, special_token=BOS, context=5, max_tokens=7)
    assert [r.tolist() for r in capped] == [[BOS, 4, 5, 6, 7], [BOS, 8]]
    assert all(r.dtype == torch.long for r in capped)


def test_a_bad_file_is_refused_when_the_corpus_is_made(tmp_path: Path) -> None:
    (tmp_path / "ok.txt").write_text("w4 w5\n")
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(CorpusError, match=r"empty\.txt"):
        TokenizedCorpus(tmp_path, None, special_token=BOS)
