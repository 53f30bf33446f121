"""Decoder directions of a transcoder set, read with numpy from its local safetensors files.

The web process has no torch and needs only the rows of the features in one graph, so the
files are memory-mapped (a safetensors file is an 8-byte header length, a JSON header and raw
little-endian arrays) and only those rows are read: a few megabytes for a 5,000-node graph of a
set that is gigabytes on disk. Sets whose weights are not on this machine (``hf://`` entries,
a source path that does not exist here) have no decoders; suggestions then go without that
signal.

Layouts (the engine's, docs/engine.md): a per-layer set is ``layer_{i}.safetensors`` with
``W_dec`` (F, d), listed by a ``config.yaml`` or found in the folder; a cross-layer set is a
folder of ``W_dec_{i}.safetensors`` with ``W_dec_{i}`` (F, n_layers - i, d), whose rows are
summed over the layers they write to (what the feature adds to the residual stream in all).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import yaml

_DTYPES: dict[str, np.dtype[Any]] = {
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),
}
_MAX_HEADER = 100 * 1024 * 1024


class DecoderFileError(ValueError):
    """A decoder file that is not the safetensors layout it should be."""


def _mapped(path: Path, key: str) -> tuple[np.memmap[Any, Any], str]:
    with open(path, "rb") as f:
        header_len = int.from_bytes(f.read(8), "little")
        if not 0 < header_len <= _MAX_HEADER:
            raise DecoderFileError(f"{path}: not a safetensors file")
        try:
            header = json.loads(f.read(header_len))
        except ValueError as exc:
            raise DecoderFileError(f"{path}: unreadable safetensors header") from exc
    info = header.get(key) if isinstance(header, dict) else None
    if not isinstance(info, dict) or info.get("dtype") not in _DTYPES:
        raise DecoderFileError(f"{path}: no {key} tensor of a float type")
    start = 8 + header_len + int(info["data_offsets"][0])
    shape = tuple(int(n) for n in info["shape"])
    return np.memmap(path, dtype=_DTYPES[info["dtype"]], mode="r", offset=start, shape=shape), info[
        "dtype"
    ]


def _as_float32(rows: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "BF16":
        # bfloat16 is the top half of a float32.
        return (rows.astype(np.uint32) << 16).view(np.float32)
    return rows.astype(np.float32)


def _layer_files(source: Path) -> dict[int, tuple[Path, str]]:
    """Layer -> (file, tensor name), or {} when the set's weights are not here."""
    folder = source.parent if source.suffix in (".yaml", ".yml") else source
    config = source if source.is_file() else folder / "config.yaml"
    if config.is_file():
        try:
            data = yaml.safe_load(config.read_text())
        except yaml.YAMLError:
            return {}
        entries = data.get("transcoders") if isinstance(data, dict) else None
        if isinstance(entries, list) and data.get("model_kind") != "cross_layer_transcoder":
            files: dict[int, tuple[Path, str]] = {}
            for layer, entry in enumerate(entries):
                if not isinstance(entry, str) or entry.startswith("hf://"):
                    return {}
                path = Path(entry) if Path(entry).is_absolute() else folder / entry
                if path.suffix != ".safetensors" or not path.is_file():
                    return {}
                files[layer] = (path, "W_dec")
            return files
    if not folder.is_dir():
        return {}
    clt = {
        int(m[1]): (p, f"W_dec_{m[1]}")
        for p in folder.glob("W_dec_*.safetensors")
        if (m := re.fullmatch(r"W_dec_(\d+)", p.stem))
    }
    if clt:
        return clt
    return {
        int(m[1]): (p, "W_dec")
        for p in folder.glob("layer_*.safetensors")
        if (m := re.fullmatch(r"layer_(\d+)", p.stem))
    }


def read_decoders(
    source: Path, features: Iterable[tuple[int, int]]
) -> dict[tuple[int, int], np.ndarray]:
    """(layer, index) -> decoder direction (d,) float32 for the features found; {} when the
    set's files are not on this machine. Raises ``DecoderFileError`` for a malformed file."""
    files = _layer_files(source)
    if not files:
        return {}
    by_layer: dict[int, list[int]] = {}
    for layer, index in set(features):
        by_layer.setdefault(layer, []).append(index)
    out: dict[tuple[int, int], np.ndarray] = {}
    for layer, indices in by_layer.items():
        if layer not in files:
            continue
        path, key = files[layer]
        weights, dtype = _mapped(path, key)
        ok = sorted(i for i in indices if 0 <= i < weights.shape[0])
        if not ok:
            continue
        rows = _as_float32(np.asarray(weights[ok]), dtype)
        if rows.ndim == 3:
            rows = rows.sum(axis=1)
        for i, row in zip(ok, rows, strict=True):
            out[(layer, i)] = row
    return out
