"""Reference-only models and transcoder sets for graphs made by other tools.

A Neuronpedia download or a circuit-tracer output names its model (``metadata.scan``) and its
transcoders (``feature_details.neuronpedia_source_set``, ``info.neuronpedia_source_set``,
``info.transcoder_set``, or the Neuronpedia / Hugging Face pages in ``info.source_urls``). When
this install has no such model or set, an import creates them from what the file says, with no
weights (``source`` empty): enough to file, open and search the graph; an admin adds the weights
to generate graphs on it. The set's kind (per-layer or cross-layer) comes from its name, since
both kinds write ``feature_type: "cross layer transcoder"``.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlparse

from django.utils.text import slugify

from contract.graph_json import GraphValidationError, NormalisedGraph
from core.visibility import Visibility
from features.models import LanguageModel, TranscoderSet

_CLT = re.compile(r"(^|[^a-z])(clt|cross[-_ ]?layer)([^a-z]|$)")


def _info(metadata: dict[str, Any]) -> dict[str, Any]:
    info = metadata.get("info")
    return info if isinstance(info, dict) else {}


def source_urls(metadata: dict[str, Any]) -> list[str]:
    urls = _info(metadata).get("source_urls")
    return [u for u in urls if isinstance(u, str)][:20] if isinstance(urls, list) else []


def named_set(metadata: dict[str, Any]) -> str:
    """The transcoder set the file names, most specific first; "" when it names none."""
    details = metadata.get("feature_details")
    info = _info(metadata)
    for value in (
        details.get("neuronpedia_source_set") if isinstance(details, dict) else None,
        info.get("neuronpedia_source_set"),
        info.get("transcoder_set"),
    ):
        if isinstance(value, str) and slugify(value.replace("/", "-")):
            return value
    scan = str(metadata.get("scan") or "")
    for url in source_urls(metadata):
        parts = [p for p in urlparse(url).path.split("/") if p]
        host = urlparse(url).netloc
        # neuronpedia.org/<model>/<source set>[/...]; huggingface.co/<owner>/<repo>
        if host.endswith("neuronpedia.org") and len(parts) >= 2 and parts[0] == scan:
            return parts[1]
        if host.endswith("huggingface.co") and len(parts) >= 2:
            return f"{parts[0]}/{parts[1]}"
    return ""


def set_slug(name: str) -> str:
    return slugify(name.replace("/", "-"))[:100]


def is_cross_layer(metadata: dict[str, Any], name: str) -> bool:
    texts = [name, str(metadata.get("scan") or ""), *source_urls(metadata)]
    return any(_CLT.search(text.lower()) for text in texts)


def n_layers_of(graph: NormalisedGraph) -> int:
    """Transcoder layers: the logits sit at n_layers + 1; else one past the deepest feature."""
    logits = [int(n["layer"]) for n in graph.document["nodes"] if n["feature_type"] == "logit"]
    if logits:
        return max(1, logits[0] - 1)
    return max((f.layer for f in graph.feature_nodes), default=0) + 1


def create_model(name: str, graph: NormalisedGraph) -> LanguageModel:
    """A reference-only model called ``name`` (the file's ``metadata.scan``)."""
    slug = slugify(name.replace("/", "-"))[:100]
    if not slug:
        raise GraphValidationError({"metadata.scan": "name the model the graph was made on"})
    found = LanguageModel.objects.filter(slug=slug).first()
    if found is not None:
        return found
    model, _ = LanguageModel.objects.get_or_create(
        slug=slug,
        defaults={
            "display_name": name[:200],
            "n_layers": n_layers_of(graph),
            # Unknown from a graph file; no generation runs on a model without weights.
            "d_model": 0,
            "vocab_size": 0,
            "max_prompt_tokens": max(64, len(graph.metadata["prompt_tokens"])),
            # Reachable through its graphs, not listed among the models to generate with.
            "visibility": Visibility.UNLISTED,
        },
    )
    return model


def find_or_create_set(
    model: LanguageModel, metadata: dict[str, Any], graph: NormalisedGraph
) -> TranscoderSet | None:
    """The set the file names, created (reference-only) when the model has none by that name;
    None when the file names none."""
    name = named_set(metadata)
    if not name:
        return None
    slug = set_slug(name)
    found = model.transcoder_sets.filter(slug__in={slug, name}).first()
    if found is not None:
        return found
    widest = max((f.feature_index for f in graph.feature_nodes), default=0) + 1
    kind = TranscoderSet.Kind.CLT if is_cross_layer(metadata, name) else TranscoderSet.Kind.PLT
    transcoder_set, _ = TranscoderSet.objects.get_or_create(
        model=model,
        slug=slug,
        defaults={"display_name": name[:200], "kind": kind, "features_per_layer": widest},
    )
    if model.default_transcoder_set_id is None:
        model.default_transcoder_set = transcoder_set
        model.save(update_fields=["default_transcoder_set"])
    return transcoder_set
