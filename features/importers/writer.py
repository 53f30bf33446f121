"""Writing dashboards to Postgres: batches of parsed features and their examples.

Writes go in batches: features through a staging table filled by ``COPY``, then one ``INSERT ...
SELECT ... ON CONFLICT`` (one statement per batch), and ``COPY`` for their examples. Resumable:
features already present are skipped (``replace=True`` overwrites them), and finished files are
recorded in ``FeatureImport`` so a rerun skips them without reading.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db import connection, transaction

from features.importers.dashboards import ParsedExample, ParsedFeature, iter_features, iter_sources
from features.importers.fields import FeatureFormatError
from features.models import FeatureImport, TranscoderSet


@dataclass
class Progress:
    files: int = 0
    files_skipped: int = 0
    read: int = 0
    created: int = 0
    updated: int = 0
    skipped: int = 0
    examples: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def rate(self) -> float:
        return self.read / max(time.monotonic() - self.started, 1e-9)

    def line(self) -> str:
        return (
            f"{self.read:,} features read, {self.created:,} created, {self.updated:,} replaced, "
            f"{self.skipped:,} already there, {self.examples:,} examples ({self.rate:,.0f}/s)"
        )


# Features go through a temporary table filled by COPY, then one INSERT ... SELECT with
# ON CONFLICT (skip, or overwrite with --replace) that returns the ids the examples need.
_STAGE = """
CREATE TEMPORARY TABLE IF NOT EXISTS import_feature_stage (
    layer smallint, index integer, density real, act_min real, act_max real,
    max_activation real, histogram jsonb, quantile_values jsonb, top_logits jsonb,
    top_logits_values jsonb, bottom_logits jsonb, bottom_logits_values jsonb)
    ON COMMIT DELETE ROWS
"""
_COPY_STAGE = """COPY import_feature_stage (layer, index, density, act_min, act_max, max_activation,
    histogram, quantile_values, top_logits, top_logits_values, bottom_logits,
    bottom_logits_values) FROM STDIN"""
_INSERT = """
INSERT INTO features_feature
    (transcoder_set_id, layer, index, density, act_min, act_max, max_activation,
     histogram, quantile_values, top_logits, top_logits_values, bottom_logits,
     bottom_logits_values, top_explanations)
SELECT %s, layer, index, density, act_min, act_max, max_activation,
       histogram, quantile_values, top_logits, top_logits_values, bottom_logits,
       bottom_logits_values, '[]'::jsonb
FROM import_feature_stage
ON CONFLICT (transcoder_set_id, layer, index) DO {conflict}
RETURNING id, layer, index, (xmax <> 0) AS replaced
"""
_UPDATE = """UPDATE SET density = EXCLUDED.density, act_min = EXCLUDED.act_min,
    act_max = EXCLUDED.act_max, max_activation = EXCLUDED.max_activation,
    histogram = EXCLUDED.histogram, quantile_values = EXCLUDED.quantile_values,
    top_logits = EXCLUDED.top_logits, top_logits_values = EXCLUDED.top_logits_values,
    bottom_logits = EXCLUDED.bottom_logits,
    bottom_logits_values = EXCLUDED.bottom_logits_values"""
_COPY_EXAMPLES = """COPY features_activationexample
    (feature_id, rank, quantile, tokens, values, max_value, max_index, train_token_ind,
     is_repeated_datapoint) FROM STDIN"""


# COPY text format, written by hand: psycopg's per-value array dumper costs ~100 µs an array,
# which made examples (two arrays each) the whole cost of an import.
_ARRAY_ELEMENT = str.maketrans({"\\": "\\\\", '"': '\\"'})
_COPY_FIELD = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _text_array(items: list[str]) -> str:
    joined = "\x1f".join(items)
    if '"' in joined or "\\" in joined:  # rare: escape element by element
        return "{" + ",".join('"' + item.translate(_ARRAY_ELEMENT) + '"' for item in items) + "}"
    return '{"' + '","'.join(items) + '"}' if items else "{}"


def _example_line(feature_id: int, rank: int, ex: ParsedExample) -> str:
    fields = (
        str(feature_id),
        str(rank),
        ex.quantile.translate(_COPY_FIELD),
        _text_array(ex.tokens).translate(_COPY_FIELD),
        "{" + ",".join(map(repr, ex.values)) + "}",
        repr(ex.max_value),
        str(ex.max_index),
        "\\N" if ex.train_token_ind is None else str(ex.train_token_ind),
        "t" if ex.is_repeated_datapoint else "f",
    )
    return "\t".join(fields) + "\n"


def _number_field(value: float | None) -> str:
    return "\\N" if value is None else repr(value)


def _json_field(value: Any) -> str:
    return "\\N" if value is None else json.dumps(value).translate(_COPY_FIELD)


def _feature_line(f: ParsedFeature) -> str:
    fields = (
        str(f.layer),
        str(f.index),
        _number_field(f.density),
        _number_field(f.act_min),
        _number_field(f.act_max),
        _number_field(f.max_activation),
        _json_field(f.histogram),
        _json_field(f.quantile_values),
        _json_field(f.top_logits),
        _json_field(f.top_logits_values),
        _json_field(f.bottom_logits),
        _json_field(f.bottom_logits_values),
    )
    return "\t".join(fields) + "\n"


def write_batch(
    transcoder_set: TranscoderSet, batch: list[ParsedFeature], *, replace: bool, progress: Progress
) -> None:
    """Insert (or replace) one batch of features and their examples in one transaction."""
    # Last one wins when a batch names a feature twice (ON CONFLICT cannot touch a row twice).
    unique = list({(f.layer, f.index): f for f in batch}.values())
    feature_lines = "".join(_feature_line(f) for f in unique)
    sql = _INSERT.format(conflict=_UPDATE if replace else "NOTHING")
    by_key = {(f.layer, f.index): f for f in unique}
    with transaction.atomic(), connection.cursor() as cursor:
        raw = cursor.cursor  # psycopg's own cursor, for COPY
        cursor.execute(_STAGE)
        # Emptied here too: inside an outer transaction ON COMMIT has not happened yet.
        cursor.execute("TRUNCATE import_feature_stage")
        with raw.copy(_COPY_STAGE) as copy:
            copy.write(feature_lines)
        cursor.execute(sql, [transcoder_set.pk])
        rows = cursor.fetchall()
        replaced = [row[0] for row in rows if row[3]]
        if replaced:
            cursor.execute(
                "DELETE FROM features_activationexample WHERE feature_id = ANY(%s)", [replaced]
            )
        lines = [
            _example_line(feature_id, rank, ex)
            for feature_id, layer, index, _ in rows
            for rank, ex in enumerate(by_key[(layer, index)].examples)
        ]
        with raw.copy(_COPY_EXAMPLES) as copy:
            copy.write("".join(lines))
        n_examples = len(lines)
    progress.created += len(rows) - len(replaced)
    progress.updated += len(replaced)
    progress.skipped += len(unique) - len(rows)
    progress.examples += n_examples


def import_features(
    transcoder_set: TranscoderSet,
    paths: Iterable[Path],
    *,
    layer: int | None = None,
    replace: bool = False,
    batch_size: int = 2000,
    max_examples: int = 20,
    on_progress: Callable[[Progress, str], None] | None = None,
) -> Progress:
    """Import every feature under ``paths`` into ``transcoder_set`` (see the module docstring)."""
    progress = Progress()
    n_layers = transcoder_set.model.n_layers
    for root in paths:
        for source in iter_sources(Path(root)):
            stat = source.stat()
            done = FeatureImport.objects.filter(
                transcoder_set=transcoder_set,
                path=str(source.resolve()),
                size=stat.st_size,
                mtime=int(stat.st_mtime),
                finished_at__isnull=False,
            )
            if not replace and done.exists():
                progress.files_skipped += 1
                if on_progress:
                    on_progress(progress, f"{source}: already imported, skipped")
                continue
            before = progress.read
            batch: list[ParsedFeature] = []
            for feature in iter_features(source, layer=layer, max_examples=max_examples):
                if feature.layer >= n_layers or feature.index >= transcoder_set.features_per_layer:
                    raise FeatureFormatError(
                        f"{source}: feature L{feature.layer}/{feature.index} is outside "
                        f"{transcoder_set} ({n_layers} layers x {transcoder_set.features_per_layer})"
                    )
                batch.append(feature)
                progress.read += 1
                if len(batch) >= batch_size:
                    write_batch(transcoder_set, batch, replace=replace, progress=progress)
                    batch = []
                    if on_progress:
                        on_progress(progress, str(source))
            if batch:
                write_batch(transcoder_set, batch, replace=replace, progress=progress)
            FeatureImport.objects.update_or_create(
                transcoder_set=transcoder_set,
                path=str(source.resolve()),
                defaults={
                    "size": stat.st_size,
                    "mtime": int(stat.st_mtime),
                    "features": progress.read - before,
                    "finished_at": _now(),
                },
            )
            progress.files += 1
            if on_progress:
                on_progress(progress, f"{source}: done")
    return progress


def _now() -> Any:
    from django.utils import timezone

    return timezone.now()
