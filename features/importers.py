"""Bulk import of feature dashboards and explanations.

Dashboards are circuit-tracer's feature JSON, one object per feature::

    {"index": 123, "layer"?: 4, "act_min", "act_max", "activation_frequency", "histogram",
     "quantile_values"?, "top_logits": [str], "bottom_logits": [str],
     "examples_quantiles": [{"quantile_name": str,
                             "examples": [{"tokens": [str], "tokens_acts_list": [float],
                                           "train_token_ind": int, "is_repeated_datapoint": bool}]}]}

They may come as one ``.json`` file (an object or a list), a folder of files, a ``.json.gz``,
a ``.tar.gz`` of files, or JSON lines (``.jsonl`` / ``.jsonl.gz``, one feature per line). The
layer comes from the object's ``layer``, else a ``layer_{i}`` file or folder name (as the demo
pack's ``features/layer_{i}.jsonl.gz``), else a file named by the Cantor-paired feature id
(circuit-tracer's ``{feature}.json``), else the ``layer`` argument.

Writes go in batches: ``INSERT ... SELECT FROM unnest(...) ON CONFLICT`` for features (one
statement per batch) and ``COPY`` for their examples. Resumable: features already present are
skipped (``replace=True`` overwrites them), and finished files are recorded in
``FeatureImport`` so a rerun skips them without reading.

Explanations are JSON lines: ``{"layer", "index", "text", "method"?, "score"?}``.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import re
import tarfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from django.db import connection, transaction

from contract.node_ids import cantor_unpair
from features.models import FeatureImport, TranscoderSet, refresh_explanations

_LAYER_NAME = re.compile(r"layer[_-]?(\d+)", re.IGNORECASE)
_SUFFIXES = (".json", ".json.gz", ".jsonl", ".jsonl.gz", ".ndjson", ".tar.gz", ".tgz")
MAX_TOKENS_PER_EXAMPLE = 1024


class FeatureFormatError(ValueError):
    """A feature object that does not fit the format; the message names where and which field."""


@dataclass
class ParsedExample:
    quantile: str
    tokens: list[str]
    values: list[float]
    max_value: float
    max_index: int
    train_token_ind: int | None
    is_repeated_datapoint: bool


@dataclass
class ParsedFeature:
    layer: int
    index: int
    density: float | None
    act_min: float | None
    act_max: float | None
    max_activation: float | None
    histogram: Any
    quantile_values: Any
    top_logits: list[str]
    bottom_logits: list[str]
    examples: list[ParsedExample] = field(default_factory=list)


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


# ---------------------------------------------------------------------------------------------
# Reading


def _number(value: Any, where: str, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise FeatureFormatError(f"{where}: {name}: expected a finite number")
    return float(value)


def _strings(value: Any, where: str, name: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise FeatureFormatError(f"{where}: {name}: expected a list of strings")
    # Postgres text cannot hold NUL; a token that is only NUL becomes empty.
    return [v.replace("\x00", "") if "\x00" in v else v for v in value]


def _numbers(value: Any, where: str, name: str) -> list[float] | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > 10_000:
        raise FeatureFormatError(f"{where}: {name}: expected a list of numbers")
    return [_number(v, where, name) or 0.0 for v in value]


def _histogram(value: Any, where: str) -> Any:
    """Counts over [act_min, act_max] (a list), or explicit bins ``{"edges", "counts"}``
    (``python -m inference dashboards`` writes these: its bins start at 0)."""
    if not isinstance(value, dict):
        return _numbers(value, where, "histogram")
    counts = _numbers(value.get("counts"), where, "histogram.counts")
    edges = _numbers(value.get("edges"), where, "histogram.edges")
    if counts is None or edges is None or len(edges) != len(counts) + 1:
        raise FeatureFormatError(f"{where}: histogram: expected {{edges, counts}}, one more edge")
    return {"edges": edges, "counts": counts}


def _layer_hint(name: str) -> int | None:
    match = _LAYER_NAME.search(name)
    return int(match.group(1)) if match else None


def parse_feature(
    obj: Any, where: str, *, layer_hint: int | None, stem: str, max_examples: int
) -> ParsedFeature:
    if not isinstance(obj, dict):
        raise FeatureFormatError(f"{where}: expected a JSON object")
    index = obj.get("index")
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise FeatureFormatError(f"{where}: index: expected a non-negative integer")
    layer = obj.get("layer")
    if layer is not None:
        if isinstance(layer, str) and layer.isdigit():
            layer = int(layer)
        if isinstance(layer, bool) or not isinstance(layer, int) or layer < 0:
            raise FeatureFormatError(f"{where}: layer: expected a non-negative integer")
    elif layer_hint is not None:
        layer = layer_hint
    elif stem.isdigit():
        layer, index = cantor_unpair(int(stem))
    else:
        raise FeatureFormatError(
            f"{where}: cannot tell the feature's layer: add a 'layer' field, name the file "
            "layer_{i}.jsonl.gz, or pass --layer"
        )
    examples = _examples(obj.get("examples_quantiles"), where, max_examples)
    act_max = _number(obj.get("act_max"), where, "act_max")
    best = max((e.max_value for e in examples), default=None)
    return ParsedFeature(
        layer=layer,
        index=index,
        density=_number(
            obj.get("activation_frequency", obj.get("density")), where, "activation_frequency"
        ),
        act_min=_number(obj.get("act_min"), where, "act_min"),
        act_max=act_max,
        max_activation=act_max if act_max is not None else best,
        histogram=_histogram(obj.get("histogram"), where),
        quantile_values=_numbers(obj.get("quantile_values"), where, "quantile_values"),
        top_logits=_strings(obj.get("top_logits"), where, "top_logits")[:100],
        bottom_logits=_strings(obj.get("bottom_logits"), where, "bottom_logits")[:100],
        examples=examples,
    )


def _examples(quantiles: Any, where: str, limit: int) -> list[ParsedExample]:
    if quantiles is None:
        return []
    if not isinstance(quantiles, list):
        raise FeatureFormatError(f"{where}: examples_quantiles: expected a list")
    out: list[ParsedExample] = []
    for qi, quantile in enumerate(quantiles):
        qwhere = f"{where}: examples_quantiles[{qi}]"
        if not isinstance(quantile, dict) or not isinstance(quantile.get("examples", []), list):
            raise FeatureFormatError(f"{qwhere}: expected {{quantile_name, examples: [...]}}")
        name = str(quantile.get("quantile_name", "")).replace("\x00", "")[:100]
        for ei, example in enumerate(quantile.get("examples", [])):
            if len(out) >= limit:
                return out
            ewhere = f"{qwhere}.examples[{ei}]"
            if not isinstance(example, dict):
                raise FeatureFormatError(f"{ewhere}: expected an object")
            tokens = _strings(example.get("tokens"), ewhere, "tokens")[:MAX_TOKENS_PER_EXAMPLE]
            raw_values = example.get("tokens_acts_list") or []
            if not isinstance(raw_values, list):
                raise FeatureFormatError(f"{ewhere}: tokens_acts_list: expected a list of numbers")
            values = [_number(v, ewhere, "tokens_acts_list") or 0.0 for v in raw_values]
            values = values[:MAX_TOKENS_PER_EXAMPLE]
            if len(values) != len(tokens):
                raise FeatureFormatError(
                    f"{ewhere}: tokens_acts_list has {len(values)} values for {len(tokens)} tokens"
                )
            if not tokens:
                continue
            peak = max(range(len(values)), key=values.__getitem__)
            start = example.get("train_token_ind")
            out.append(
                ParsedExample(
                    quantile=name,
                    tokens=tokens,
                    values=values,
                    max_value=values[peak],
                    max_index=peak,
                    train_token_ind=start
                    if isinstance(start, int) and not isinstance(start, bool)
                    else None,
                    is_repeated_datapoint=bool(example.get("is_repeated_datapoint", False)),
                )
            )
    return out


def _objects_in(stream: IO[bytes], name: str) -> Iterator[tuple[str, Any]]:
    """(where, object) for each feature object in one file's bytes."""
    if name.endswith(".gz") or name.endswith(".tgz"):
        stream = gzip.GzipFile(fileobj=stream)  # type: ignore[assignment]
        name = name.removesuffix(".gz")
    if name.endswith(".jsonl") or name.endswith(".ndjson"):
        for number, line in enumerate(io.TextIOWrapper(stream, encoding="utf-8"), start=1):
            if line.strip():
                try:
                    yield f"{name}:{number}", json.loads(line)
                except ValueError as exc:
                    raise FeatureFormatError(f"{name}:{number}: not valid JSON ({exc})") from None
        return
    try:
        data = json.load(stream)
    except ValueError as exc:
        raise FeatureFormatError(f"{name}: not valid JSON ({exc})") from None
    if isinstance(data, list):
        for i, obj in enumerate(data):
            yield f"{name}[{i}]", obj
    else:
        yield name, data


def iter_sources(path: Path) -> list[Path]:
    """The files an import of ``path`` reads, in a stable order."""
    if path.is_dir():
        return sorted(
            (p for p in path.rglob("*") if p.is_file() and p.name.endswith(_SUFFIXES)),
            key=lambda p: (_layer_hint(str(p)) or 0, str(p)),
        )
    if not path.exists():
        raise FeatureFormatError(f"{path}: no such file or folder")
    return [path]


def iter_features(path: Path, *, layer: int | None, max_examples: int) -> Iterator[ParsedFeature]:
    """Every feature in one file (a tarball's members included)."""
    if path.name.endswith((".tar.gz", ".tgz")):
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                if not member.isfile() or not member.name.endswith(_SUFFIXES[:5]):
                    continue
                handle = tar.extractfile(member)
                assert handle is not None
                yield from _features_in(handle, member.name, layer, max_examples)
        return
    with path.open("rb") as handle:
        yield from _features_in(handle, str(path), layer, max_examples)


def _features_in(
    stream: IO[bytes], name: str, layer: int | None, max_examples: int
) -> Iterator[ParsedFeature]:
    hint = layer if layer is not None else _layer_hint(name)
    stem = Path(name).name.split(".")[0]
    for where, obj in _objects_in(stream, name):
        yield parse_feature(obj, where, layer_hint=hint, stem=stem, max_examples=max_examples)


# ---------------------------------------------------------------------------------------------
# Writing


# Features go through a temporary table filled by COPY, then one INSERT ... SELECT with
# ON CONFLICT (skip, or overwrite with --replace) that returns the ids the examples need.
_STAGE = """
CREATE TEMPORARY TABLE IF NOT EXISTS import_feature_stage (
    layer smallint, index integer, density real, act_min real, act_max real,
    max_activation real, histogram jsonb, quantile_values jsonb, top_logits jsonb,
    bottom_logits jsonb) ON COMMIT DELETE ROWS
"""
_COPY_STAGE = """COPY import_feature_stage (layer, index, density, act_min, act_max, max_activation,
    histogram, quantile_values, top_logits, bottom_logits) FROM STDIN"""
_INSERT = """
INSERT INTO features_feature
    (transcoder_set_id, layer, index, density, act_min, act_max, max_activation,
     histogram, quantile_values, top_logits, bottom_logits, top_explanations)
SELECT %s, layer, index, density, act_min, act_max, max_activation,
       histogram, quantile_values, top_logits, bottom_logits, '[]'::jsonb
FROM import_feature_stage
ON CONFLICT (transcoder_set_id, layer, index) DO {conflict}
RETURNING id, layer, index, (xmax <> 0) AS replaced
"""
_UPDATE = """UPDATE SET density = EXCLUDED.density, act_min = EXCLUDED.act_min,
    act_max = EXCLUDED.act_max, max_activation = EXCLUDED.max_activation,
    histogram = EXCLUDED.histogram, quantile_values = EXCLUDED.quantile_values,
    top_logits = EXCLUDED.top_logits, bottom_logits = EXCLUDED.bottom_logits"""
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
        _json_field(f.bottom_logits),
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


# ---------------------------------------------------------------------------------------------
# Explanations


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
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path.name}:{number}"
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
            score = _number(obj.get("score"), where, "score")
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
