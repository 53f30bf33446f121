"""Dashboards: circuit-tracer's feature JSON, one object per feature, and the files that hold it.

    {"index": 123, "layer"?: 4, "act_min", "act_max", "activation_frequency", "histogram",
     "quantile_values"?, "top_logits": [str], "bottom_logits": [str],
     "top_logits_values"?: [float], "bottom_logits_values"?: [float],
     "examples_quantiles": [{"quantile_name": str,
                             "examples": [{"tokens": [str], "tokens_acts_list": [float],
                                           "train_token_ind": int, "is_repeated_datapoint": bool}]}]}

They may come as one ``.json`` file (an object or a list), a folder of files, a ``.json.gz``,
a ``.tar.gz`` of files, or JSON lines (``.jsonl`` / ``.jsonl.gz``, one feature per line). The
layer comes from the object's ``layer``, else a ``layer_{i}`` file or folder name (as the demo
pack's ``features/layer_{i}.jsonl.gz``), else a file named by the Cantor-paired feature id
(circuit-tracer's ``{feature}.json``), else the ``layer`` argument.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from contract.node_ids import cantor_unpair
from features.importers.fields import FeatureFormatError, number, numbers, strings

_LAYER_NAME = re.compile(r"layer[_-]?(\d+)", re.IGNORECASE)
_SUFFIXES = (".json", ".json.gz", ".jsonl", ".jsonl.gz", ".ndjson", ".tar.gz", ".tgz")
MAX_TOKENS_PER_EXAMPLE = 1024
MAX_LOGITS = 100


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
    # Each output token's value, in the same order; [] when the file has none (older exports).
    top_logits_values: list[float] = field(default_factory=list)
    bottom_logits_values: list[float] = field(default_factory=list)
    examples: list[ParsedExample] = field(default_factory=list)


def _histogram(value: Any, where: str) -> Any:
    """Counts over [act_min, act_max] (a list), or explicit bins ``{"edges", "counts"}``
    (``python -m inference dashboards`` writes these: its bins start at 0)."""
    if not isinstance(value, dict):
        return numbers(value, where, "histogram")
    counts = numbers(value.get("counts"), where, "histogram.counts")
    edges = numbers(value.get("edges"), where, "histogram.edges")
    if counts is None or edges is None or len(edges) != len(counts) + 1:
        raise FeatureFormatError(f"{where}: histogram: expected {{edges, counts}}, one more edge")
    return {"edges": edges, "counts": counts}


def _logits(obj: dict[str, Any], where: str, name: str) -> tuple[list[str], list[float]]:
    """An output-token list and its optional ``{name}_values`` (one number per token)."""
    tokens = strings(obj.get(name), where, name)[:MAX_LOGITS]
    values = numbers(obj.get(f"{name}_values"), where, f"{name}_values")
    if values is None:
        return tokens, []
    values = values[:MAX_LOGITS]
    if len(values) != len(tokens):
        raise FeatureFormatError(
            f"{where}: {name}_values: {len(values)} values for {len(tokens)} tokens"
        )
    return tokens, values


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
    act_max = number(obj.get("act_max"), where, "act_max")
    best = max((e.max_value for e in examples), default=None)
    top_logits, top_values = _logits(obj, where, "top_logits")
    bottom_logits, bottom_values = _logits(obj, where, "bottom_logits")
    return ParsedFeature(
        layer=layer,
        index=index,
        density=number(
            obj.get("activation_frequency", obj.get("density")), where, "activation_frequency"
        ),
        act_min=number(obj.get("act_min"), where, "act_min"),
        act_max=act_max,
        max_activation=act_max if act_max is not None else best,
        histogram=_histogram(obj.get("histogram"), where),
        quantile_values=numbers(obj.get("quantile_values"), where, "quantile_values"),
        top_logits=top_logits,
        bottom_logits=bottom_logits,
        top_logits_values=top_values,
        bottom_logits_values=bottom_values,
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
            tokens = strings(example.get("tokens"), ewhere, "tokens")[:MAX_TOKENS_PER_EXAMPLE]
            raw_values = example.get("tokens_acts_list") or []
            if not isinstance(raw_values, list):
                raise FeatureFormatError(f"{ewhere}: tokens_acts_list: expected a list of numbers")
            values = [number(v, ewhere, "tokens_acts_list") or 0.0 for v in raw_values]
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
        for line_number, line in enumerate(io.TextIOWrapper(stream, encoding="utf-8"), start=1):
            if line.strip():
                try:
                    yield f"{name}:{line_number}", json.loads(line)
                except ValueError as exc:
                    raise FeatureFormatError(
                        f"{name}:{line_number}: not valid JSON ({exc})"
                    ) from None
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
