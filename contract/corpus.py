"""What a dashboards corpus file must be, checked where it enters (the API, the worker, the CLI).

A corpus is ``.txt`` (one document per line, or documents separated by blank lines), ``.jsonl``
(one JSON object per line, the document in a text field) or either gzipped, or a folder of them
(inference/engine/corpus.py reads them). The web side checks an upload or a server path with
these functions before a job is queued, the engine checks each file again before reading it, so
both refuse the same files with the same words.
"""

from __future__ import annotations

import codecs
import json
import zlib
from collections.abc import Iterable, Iterator

SUFFIXES = (".txt", ".jsonl", ".txt.gz", ".jsonl.gz")
# Bytes read from the start of a file (decompressed) to tell text from binary.
SNIFF_BYTES = 8192


def head_problem(head: bytes, *, whole: bool = False) -> str | None:
    """Why the first bytes of a (decompressed) file are not a corpus, or None when they may be.

    ``whole``: ``head`` is the entire file, so a multi-byte character cut at its end is an error.
    """
    if not head.strip():
        return "the file is empty"
    if b"\x00" in head:
        return "looks binary (NUL bytes), not UTF-8 text"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=whole)
    except UnicodeDecodeError as exc:
        return f"not UTF-8 text ({exc.reason} at byte {exc.start})"
    return None


def suffix_problem(name: str) -> str | None:
    if name.endswith(SUFFIXES):
        return None
    return f"unsupported corpus file (want {', '.join(SUFFIXES)})"


class _Lines:
    """The JSON-lines check of a streamed file: each complete line an object with the field."""

    def __init__(self, text_field: str) -> None:
        self.text_field = text_field
        self.rest = ""
        self.number = 0

    def feed(self, text: str, final: bool) -> str | None:
        lines = (self.rest + text).split("\n")
        self.rest = "" if final else lines.pop()
        for line in lines:
            self.number += 1
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as exc:
                return f"line {self.number}: not valid JSON ({exc})"
            if not isinstance(obj, dict) or not isinstance(obj.get(self.text_field), str):
                return f"line {self.number}: no string field {self.text_field!r}"
        return None


def _with_end(chunks: Iterable[bytes]) -> Iterator[tuple[bytes, bool]]:
    """(chunk, False) for each chunk, then (b"", True) once: the decoders' final call."""
    for chunk in chunks:
        if chunk:
            yield chunk, False
    yield b"", True


def stream_problem(
    name: str, chunks: Iterable[bytes], *, text_field: str = "text", max_bytes: int
) -> str | None:
    """Why a whole file (its raw bytes, in chunks) is not a corpus, or None when it is one.

    Gzip is decompressed as it streams, at most ``max_bytes`` of text (a small upload must not
    decompress into gigabytes on the web server). Checks: the suffix, gzip, UTF-8 from start to
    end, no NUL, not blank, and for ``.jsonl`` every line.
    """
    if problem := suffix_problem(name):
        return problem
    gz = zlib.decompressobj(wbits=31) if name.endswith(".gz") else None
    decoder = codecs.getincrementaldecoder("utf-8")()
    lines = _Lines(text_field) if name.removesuffix(".gz").endswith(".jsonl") else None
    total = offset = 0
    seen_text = False
    for raw, final in _with_end(chunks):
        try:
            data = raw if gz is None else gz.decompress(raw) + (gz.flush() if final else b"")
        except zlib.error as exc:
            return f"not a readable gzip file ({exc})"
        if final and gz is not None and not gz.eof:
            return "not a readable gzip file (it ends early)"
        total += len(data)
        if total > max_bytes:
            return f"more than {max_bytes:,} bytes of text once decompressed"
        if b"\x00" in data:
            return "looks binary (NUL bytes), not UTF-8 text"
        try:
            text = decoder.decode(data, final=final)
        except UnicodeDecodeError as exc:
            return f"not UTF-8 text ({exc.reason} at byte {offset + exc.start})"
        offset += len(data)
        seen_text = seen_text or bool(text.strip())
        if lines is not None and (problem := lines.feed(text, final)):
            return problem
    return None if seen_text else "the file is empty"
