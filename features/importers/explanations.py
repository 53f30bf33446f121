"""Explanations: JSON lines ``{"layer", "index", "text", "method"?, "score"?}`` (or ``feature``,
the Cantor-paired id, instead of ``layer`` and ``index``)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.db import connection, transaction

from contract.node_ids import cantor_unpair
from features.importers.fields import FeatureFormatError, number
from features.models import TranscoderSet, refresh_explanations

_INSERT_EXPLANATIONS = """
INSERT INTO features_explanation (feature_id, text, method, score, created_at)
SELECT f.id, u.text, u.method, u.score, now()
FROM unnest(%(layer)s::smallint[], %(index)s::int[], %(text)s::text[], %(method)s::text[],
            %(score)s::real[]) AS u(layer, index, text, method, score)
JOIN features_feature f
  ON f.transcoder_set_id = %(ts)s AND f.layer = u.layer AND f.index = u.index
WHERE NOT EXISTS (
    SELECT 1 FROM features_explanation e
    WHERE e.feature_id = f.id AND e.text = u.text AND e.method = u.method)
RETURNING feature_id
"""


@dataclass
class ExplanationProgress:
    read: int = 0
    created: int = 0


def iter_explanations(
    path: Path, default_method: str
) -> Iterator[tuple[int, int, str, str, float | None]]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path.name}:{line_number}"
            try:
                obj = json.loads(line)
            except ValueError as exc:
                raise FeatureFormatError(f"{where}: not valid JSON ({exc})") from None
            if not isinstance(obj, dict):
                raise FeatureFormatError(f"{where}: expected a JSON object")
            layer, index = obj.get("layer"), obj.get("index")
            if layer is None and isinstance(obj.get("feature"), int):
                layer, index = cantor_unpair(obj["feature"])
            if not all(
                isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (layer, index)
            ):
                raise FeatureFormatError(f"{where}: layer and index must be non-negative integers")
            text = obj.get("text", obj.get("description"))
            if not isinstance(text, str) or not text.strip():
                raise FeatureFormatError(f"{where}: text: expected a non-empty string")
            method = obj.get("method", default_method)
            score = number(obj.get("score"), where, "score")
            yield layer, index, text.strip()[:5000], str(method)[:100], score  # type: ignore[misc]


def import_explanations(
    transcoder_set: TranscoderSet,
    path: Path,
    *,
    method: str = "",
    batch_size: int = 5000,
    on_progress: Callable[[ExplanationProgress], None] | None = None,
) -> ExplanationProgress:
    """Add explanations from JSON lines; lines for unknown features and exact repeats are skipped."""
    progress = ExplanationProgress()
    batch: list[tuple[int, int, str, str, float | None]] = []

    def flush() -> None:
        params: dict[str, Any] = {
            "ts": transcoder_set.pk,
            "layer": [b[0] for b in batch],
            "index": [b[1] for b in batch],
            "text": [b[2] for b in batch],
            "method": [b[3] for b in batch],
            "score": [b[4] for b in batch],
        }
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(_INSERT_EXPLANATIONS, params)
            progress.created += cursor.rowcount
            feature_ids = [row[0] for row in cursor.fetchall()]
            refresh_explanations(feature_ids)
        batch.clear()
        if on_progress:
            on_progress(progress)

    for item in iter_explanations(path, method):
        batch.append(item)
        progress.read += 1
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    return progress
