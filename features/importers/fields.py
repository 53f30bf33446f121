"""Checks of single JSON values in an import file; each error names where and which field."""

from __future__ import annotations

import math
from typing import Any


class FeatureFormatError(ValueError):
    """A feature object that does not fit the format; the message names where and which field."""


def number(value: Any, where: str, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise FeatureFormatError(f"{where}: {name}: expected a finite number")
    return float(value)


def strings(value: Any, where: str, name: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise FeatureFormatError(f"{where}: {name}: expected a list of strings")
    # Postgres text cannot hold NUL; a token that is only NUL becomes empty.
    return [v.replace("\x00", "") if "\x00" in v else v for v in value]


def numbers(value: Any, where: str, name: str) -> list[float] | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > 10_000:
        raise FeatureFormatError(f"{where}: {name}: expected a list of numbers")
    return [number(v, where, name) or 0.0 for v in value]
