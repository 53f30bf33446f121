"""Text corpora for feature dashboards: documents from files, cut into token contexts.

Sources:
- a ``.txt`` file: one document per line, or, when the file has a blank line between two
  non-blank lines, documents separated by blank lines (lines of one document joined by newlines);
- a ``.jsonl`` file: one JSON object per line, the document in its ``text_field`` (``text``);
- either of them gzipped (``.txt.gz``, ``.jsonl.gz``);
- a folder: every such file under it, in sorted path order;
- a Hugging Face dataset id (``org/name``), read in streaming mode from its ``train`` split,
  when the optional ``datasets`` package is installed.

A file that is missing, empty, binary, not UTF-8 or malformed JSON raises ``CorpusError`` naming
the file (and the line, where there is one).

``TokenizedCorpus`` tokenizes each document (no special tokens added) and cuts it into contexts
of at most ``context`` tokens, each starting with the model's special first token; a context never
spans two documents, so an example window never mixes unrelated texts. ``max_tokens`` caps the
tokens the model reads, special first tokens included. Iterating it again reads the source again
and yields the same contexts (``compute_dashboards`` reads it once and keeps the ids).
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, cast

import torch

from contract.corpus import SNIFF_BYTES, SUFFIXES, head_problem, suffix_problem


class CorpusError(ValueError):
    """A corpus source that cannot be read; the message names the file."""


def _open_text(path: Path) -> IO[str]:
    return io.TextIOWrapper(_open_bytes(path), encoding="utf-8", errors="strict", newline=None)


def _open_bytes(path: Path) -> IO[bytes]:
    if path.name.endswith(".gz"):
        return cast(IO[bytes], gzip.open(path, "rb"))
    return open(path, "rb")


def _check_file(path: Path) -> None:
    """Refuse a missing, empty or binary file before any model time is spent on it."""
    if not path.exists():
        raise CorpusError(f"corpus file not found: {path}")
    if not path.is_file():
        raise CorpusError(f"corpus path is not a file: {path}")
    if problem := suffix_problem(path.name):
        raise CorpusError(f"{path}: {problem}")
    try:
        with _open_bytes(path) as raw:
            head = raw.read(SNIFF_BYTES)
    except (OSError, EOFError) as exc:  # a truncated or non-gzip .gz
        raise CorpusError(f"{path}: cannot read ({exc})") from None
    if problem := head_problem(head, whole=len(head) < SNIFF_BYTES):
        raise CorpusError(f"{path}: {problem}")


def _has_paragraphs(path: Path) -> bool:
    """True when a blank line separates two non-blank lines (blank-line separated documents)."""
    seen_text = blank_after_text = False
    with _open_text(path) as lines:
        for line in lines:
            if line.strip():
                if blank_after_text:
                    return True
                seen_text = True
            elif seen_text:
                blank_after_text = True
    return False


def _text_documents(path: Path) -> Iterator[str]:
    paragraphs = _has_paragraphs(path)
    with _open_text(path) as lines:
        if not paragraphs:
            for line in lines:
                if line.strip():
                    yield line.rstrip("\n")
            return
        block: list[str] = []
        for line in lines:
            if line.strip():
                block.append(line.rstrip("\n"))
            elif block:
                yield "\n".join(block)
                block = []
        if block:
            yield "\n".join(block)


def _jsonl_documents(path: Path, text_field: str) -> Iterator[str]:
    with _open_text(path) as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as exc:
                raise CorpusError(f"{path}:{number}: not valid JSON ({exc})") from None
            text = obj.get(text_field) if isinstance(obj, dict) else None
            if not isinstance(text, str):
                raise CorpusError(f"{path}:{number}: no string field {text_field!r}")
            if text.strip():
                yield text


def _file_documents(path: Path, text_field: str) -> Iterator[str]:
    _check_file(path)
    name = path.name.removesuffix(".gz")
    documents = (
        _jsonl_documents(path, text_field) if name.endswith(".jsonl") else _text_documents(path)
    )
    try:
        yield from documents
    except UnicodeDecodeError as exc:
        raise CorpusError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except (OSError, EOFError) as exc:
        raise CorpusError(f"{path}: cannot read ({exc})") from None


def corpus_files(source: Path) -> list[Path]:
    """The files a corpus path stands for, each checked (see the module docstring)."""
    if source.is_dir():
        files = sorted(p for p in source.rglob("*") if p.is_file() and p.name.endswith(SUFFIXES))
        if not files:
            raise CorpusError(f"{source}: no {', '.join(SUFFIXES)} files in this folder")
    else:
        files = [source]
    for path in files:
        _check_file(path)
    return files


def _hub_documents(dataset_id: str, text_field: str) -> Iterator[str]:
    try:
        import datasets
    except ImportError:
        raise CorpusError(
            f"corpus not found: {dataset_id} (not a file or folder; install `datasets` to read "
            "a Hugging Face dataset id)"
        ) from None
    try:
        rows = datasets.load_dataset(dataset_id, split="train", streaming=True)
    except Exception as exc:
        raise CorpusError(f"cannot load dataset {dataset_id!r}: {exc}") from exc
    for row in rows:
        text = row.get(text_field)
        if not isinstance(text, str):
            raise CorpusError(f"dataset {dataset_id!r}: no string field {text_field!r}")
        if text.strip():
            yield text


def read_documents(source: str | Path, *, text_field: str = "text") -> Iterator[str]:
    """Every document of a corpus source, in a stable order (see the module docstring)."""
    path = Path(source)
    if not path.exists() and isinstance(source, str) and source.count("/") == 1:
        yield from _hub_documents(source, text_field)
        return
    if not path.exists():
        raise CorpusError(f"corpus not found: {path}")
    for file in corpus_files(path):
        yield from _file_documents(file, text_field)


class TokenizedCorpus:
    """Contexts (1-D int64 tensors, special first token included) of a corpus source."""

    def __init__(
        self,
        source: str | Path,
        tokenizer: Any,
        *,
        special_token: int,
        context: int = 64,
        max_tokens: int | None = None,
        text_field: str = "text",
    ) -> None:
        if context < 2:
            raise ValueError("context must be at least 2 tokens (the special token and one more)")
        if max_tokens is not None and max_tokens < 2:
            raise ValueError("max_tokens must be at least 2")
        self.source = source
        self.tokenizer = tokenizer
        self.special_token = special_token
        self.context = context
        self.max_tokens = max_tokens
        self.text_field = text_field
        self._n_tokens: int | None = None
        path = Path(source)
        if path.exists():
            corpus_files(path)  # fail on a bad file now, not an hour into the run

    def __iter__(self) -> Iterator[torch.Tensor]:
        budget = self.max_tokens
        body = self.context - 1
        produced = 0
        for document in read_documents(self.source, text_field=self.text_field):
            ids = self.tokenizer(document, add_special_tokens=False)["input_ids"]
            for start in range(0, len(ids), body):
                row = [self.special_token, *ids[start : start + body]]
                if budget is not None:
                    row = row[: budget - produced]
                    if len(row) < 2:  # a lone special token carries no statistics
                        return
                produced += len(row)
                yield torch.tensor(row, dtype=torch.long)
                if budget is not None and produced >= budget:
                    return
        if produced == 0:
            raise CorpusError(f"{self.source}: the corpus has no text")

    @property
    def n_tokens(self) -> int:
        """Tokens the model reads over one pass (counted once by tokenizing, then cached)."""
        if self._n_tokens is None:
            self._n_tokens = sum(len(row) for row in self)
        return self._n_tokens
