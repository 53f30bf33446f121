"""The corpus's token ids, read and checked once, for the dashboards' passes over it.

`compute_dashboards` goes over the corpus three times (counted, streamed, and again for the
examples' contexts); a `TokenizedCorpus` tokenizes on every pass (about 2.2 CPU-s per pass at
1M tokens on the demo pack's tokenizer). The first pass writes each context's ids as int32 to an
unnamed temporary file (4 bytes a token, on disk: memory stays flat as the corpus grows; the
file is gone when the object is) and the
later passes read them back through a read-only memory map. Only the contexts' lengths (one
integer per context, 1/64 of a token's bytes at 64-token contexts) are kept in memory.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch

# Windows read at a time: 8,192 x 65 int64 positions are 4 MiB; a layer's 143,000 at once
# were about 75 MiB per temporary array, which the output phase's peak paid for.
_WINDOW_ROWS = 8192


class _CorpusTokens:
    def __init__(self, corpus: Iterable[Any], vocab: int) -> None:
        self._file = tempfile.TemporaryFile()  # noqa: SIM115 (kept open for the memory map)
        lengths: list[int] = []
        for i, row in enumerate(corpus):
            tensor = torch.as_tensor(row, dtype=torch.long).reshape(-1)
            if len(tensor) == 0:
                raise ValueError(f"corpus context {i} is empty")
            if int(tensor.min()) < 0 or int(tensor.max()) >= vocab:
                raise ValueError(f"corpus context {i} has token ids outside [0, {vocab})")
            self._file.write(tensor.to(torch.int32).numpy().tobytes())
            lengths.append(len(tensor))
        self._file.flush()
        self.lengths = np.array(lengths, dtype=np.int64)
        self._starts = np.concatenate([[0], np.cumsum(self.lengths)])
        self.n_tokens = int(self._starts[-1])
        self._ids = (
            np.memmap(self._file, dtype=np.int32, mode="r")
            if self.n_tokens
            else np.zeros(0, dtype=np.int32)
        )

    def __len__(self) -> int:
        return len(self.lengths)

    def row(self, i: int) -> torch.Tensor:
        """Context ``i``'s ids (1-D int64)."""
        return torch.from_numpy(self._ids[self._starts[i] : self._starts[i + 1]].astype(np.int64))

    def windows(self, ptr: torch.Tensor, stride: int, before: int, after: int) -> torch.Tensor:
        """(n, before + 1 + after) int32: the ids around each token pointer (context index *
        ``stride`` + position), -1 outside positions 1 to the context's end (the special first
        token is never shown). Read from the memory map, so no context is loaded whole, and
        ``_WINDOW_ROWS`` pointers at a time, so the int64 positions are never made for all."""
        offsets = np.arange(-before, after + 1)
        out = np.empty((len(ptr), len(offsets)), dtype=np.int32)
        for start in range(0, len(ptr), _WINDOW_ROWS):
            part = ptr[start : start + _WINDOW_ROWS].numpy()
            context = part // stride
            pos = (part % stride)[:, None] + offsets[None, :]
            length = self.lengths[context][:, None]
            inside = (pos >= 1) & (pos < length)
            flat = self._starts[context][:, None] + np.clip(pos, 0, length - 1)
            out[start : start + len(part)] = np.where(inside, self._ids[flat], -1)
        return torch.from_numpy(out)

    def rows(self, start: int = 0) -> Iterator[torch.Tensor]:
        """The contexts from ``start`` on, in corpus order."""
        for i in range(start, len(self.lengths)):
            yield self.row(i)
