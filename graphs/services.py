"""Writes that touch several models or storage: storing a graph, deleting it, saving subgraphs.

``store_graph`` is the one way a graph gets in (upload, ``import_graph``, the generation worker
through ``store_generated_graph``): validate, write the artifact, then the ``Graph`` row and its
``GraphNode`` index in one transaction. If the transaction fails the artifact is deleted, so
nothing is half-written.

Slugs are unique per model, and a name taken must never tell someone that a graph they may not
see exists. So a graph a user creates that is not public gets a slug of its own kind
(``private_slug``: their name plus random letters): nobody can find it by trying names, and it
never takes a name someone else wants for a public graph. A taken name is then reported only
when the requester can list the graph that has it (docs/api.md, "Slugs").
"""

from __future__ import annotations

import io
import math
import re
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.text import slugify

from contract.graph_json import (
    GraphValidationError,
    Limits,
    NormalisedGraph,
    parse_json,
    read_limited,
    validate_graph,
)
from core.visibility import Visibility
from features.models import LanguageModel, TranscoderSet
from graphs import artifacts, references, sidecar
from graphs.models import Graph, GraphNode, Subgraph
from graphs.server_paths import scrub_metadata, without_paths

if TYPE_CHECKING:
    from django.contrib.auth.models import User

_NODE_BATCH = 5000
# Letters only, so a private slug never looks like free_slug's "-2", "-3"; 24**10 is about 2**46.
_SUFFIX_LETTERS = "abcdefghijkmnpqrstuvwxyz"
_SUFFIX_LENGTH = 10


def limits() -> Limits:
    return Limits(
        max_bytes=settings.GRAPH_UPLOAD_MAX_BYTES,
        max_nodes=settings.GRAPH_MAX_NODES,
        max_links=settings.GRAPH_MAX_LINKS,
    )


def resolve_model(slug: str | None, metadata: dict[str, Any] | None = None) -> LanguageModel:
    """The model named by ``slug``, else by the document's ``metadata.scan``."""
    name = slug or (metadata or {}).get("scan") or ""
    model = LanguageModel.objects.filter(slug=name).first() if name else None
    if model is None:
        field = "model" if slug or not metadata else "metadata.scan"
        known = ", ".join(LanguageModel.objects.values_list("slug", flat=True)[:20]) or "none yet"
        raise GraphValidationError({field: f"unknown model {name!r} (known: {known})"})
    return model


def resolve_transcoder_set(
    model: LanguageModel, slug: str | None, metadata: dict[str, Any] | None = None
) -> TranscoderSet | None:
    details = (metadata or {}).get("feature_details") or {}
    name = slug or (details.get("neuronpedia_source_set") if isinstance(details, dict) else None)
    if name:
        found = model.transcoder_sets.filter(slug=name).first()
        if found is None:
            raise GraphValidationError(
                {"transcoder_set": f"model {model.slug!r} has no transcoder set {name!r}"}
            )
        return found
    if model.default_transcoder_set_id is not None:
        return model.default_transcoder_set
    return model.transcoder_sets.first()


def free_slug(model: LanguageModel, wanted: str) -> str:
    """``wanted`` slugified, with -2, -3 ... appended until no graph of ``model`` has it."""
    base = slugify(wanted)[:90] or "graph"
    taken = set(
        Graph.objects.filter(model=model, slug__regex=rf"^{re.escape(base)}(-\d+)?$").values_list(
            "slug", flat=True
        )
    )
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def private_slug(wanted: str) -> str:
    """The slug of a non-public graph a user creates: ``wanted`` slugified, then random letters."""
    base = slugify(wanted)[: 99 - _SUFFIX_LENGTH] or "graph"
    suffix = "".join(secrets.choice(_SUFFIX_LETTERS) for _ in range(_SUFFIX_LENGTH))
    return f"{base}-{suffix}"


def slug_taken(model: LanguageModel, slug: str, user: User | None) -> str | None:
    """Why ``user`` cannot have ``slug`` for a public graph of ``model``, or None when it is free.

    Only a graph the user can list (theirs, or a public one) is named as the reason; any other
    (a private graph made before private slugs, or by an admin's import) gets the same answer
    whatever it is, so the reply says nothing about it.
    """
    if not Graph.objects.filter(model=model, slug=slug).exists():
        return None
    if user is None or Graph.objects.listed_for(user).filter(model=model, slug=slug).exists():
        return f"model {model.slug!r} already has a graph called {slug!r}"
    return f"the slug {slug!r} is not available; choose another"


def store_graph(
    graph: NormalisedGraph,
    *,
    model: LanguageModel,
    transcoder_set: TranscoderSet | None,
    slug: str,
    owner: User | None,
    visibility: str = Visibility.PRIVATE,
    source: str = Graph.Source.UPLOAD,
    title: str = "",
    target: dict[str, Any] | None = None,
    scores: dict[str, Any] | None = None,
    generation_settings: dict[str, Any] | None = None,
    pruning_settings: dict[str, Any] | None = None,
    raw_artifact_name: str = "",
) -> Graph:
    """Store a validated graph: artifact, ``Graph`` row and ``GraphNode`` index, atomically.

    Raises ``GraphValidationError({"slug": ...})`` when the slug is taken.
    """
    # The artifact is served as stored, so no server path may be in it (graphs/server_paths.py).
    metadata = graph.document["metadata"] = scrub_metadata(graph.metadata, model_slug=model.slug)
    metadata["slug"] = slug
    metadata["scan"] = model.slug
    scores = scores or _finite_numbers(metadata.get("scores"))
    if scores:
        metadata["scores"] = scores
    if transcoder_set is not None:
        details = metadata.get("feature_details") or {}
        metadata["feature_details"] = {**details, "neuronpedia_source_set": transcoder_set.slug}
    generation = generation_settings or metadata.get("generation_settings") or {}
    pruning = pruning_settings or metadata.get("pruning_settings") or {}
    if not pruning and metadata.get("node_threshold") is not None:
        pruning = {"node_threshold": metadata["node_threshold"]}
    if generation:
        metadata["generation_settings"] = generation
    if pruning:
        metadata["pruning_settings"] = pruning

    stored = artifacts.write(graph.document, model_slug=model.slug, slug=slug)
    try:
        sidecar.store(graph.document, stored)
        with transaction.atomic():
            row = Graph.objects.create(
                model=model,
                transcoder_set=transcoder_set,
                slug=slug,
                title=title[:200],
                prompt=metadata["prompt"],
                prompt_tokens=metadata["prompt_tokens"],
                target=target,
                generation_settings=generation,
                pruning_settings=pruning,
                scores=scores or {},
                n_nodes=graph.n_nodes,
                n_links=graph.n_links,
                n_features=len(graph.feature_nodes),
                owner=owner,
                visibility=visibility,
                source=source,
                artifact=stored.name,
                artifact_bytes=stored.raw_bytes,
                artifact_gzip_bytes=stored.gzip_bytes,
                artifact_sha256=stored.sha256,
                raw_artifact=raw_artifact_name,
            )
            _index_nodes(row, graph)
    except IntegrityError as exc:
        artifacts.delete(stored.name)
        if "graph_slug_per_model" in str(exc):
            reason = slug_taken(model, slug, owner) or f"the slug {slug!r} was just taken"
            raise GraphValidationError({"slug": reason}) from None
        raise
    except BaseException:
        artifacts.delete(stored.name)
        raise
    return row


def store_generated_graph(
    document: dict[str, Any],
    *,
    model: LanguageModel,
    transcoder_set: TranscoderSet | None,
    owner: User | None,
    prompt: str,
    slug: str = "",
    visibility: str = Visibility.PRIVATE,
    title: str = "",
    target: dict[str, Any] | None = None,
    featured: bool = False,
    then: Callable[[Graph], None],
) -> Graph:
    """Validate and store the graph JSON a worker generated, under ``slug`` or (when empty) a free
    slug made from the prompt; a graph that is not public gets ``private_slug`` of either.
    ``then(graph)`` runs inside the same transaction (the job system marks its job succeeded
    there): if it raises, the graph and its artifact are gone and the exception propagates.

    Raises ``GraphValidationError`` when the graph cannot be stored (e.g. ``slug`` is taken).
    """
    normalised = validate_graph(document, n_layers=model.n_layers, limits=limits())
    metadata = document.get("metadata") or {}
    private = visibility != Visibility.PUBLIC
    for _ in range(5):
        try:
            return _store_generated(
                normalised,
                metadata,
                model=model,
                transcoder_set=transcoder_set,
                owner=owner,
                slug=private_slug(slug or prompt[:60])
                if private
                else slug or free_slug(model, prompt[:60]),
                visibility=visibility,
                title=title,
                target=target,
                featured=featured,
                then=then,
            )
        except GraphValidationError as exc:
            # Another graph took the slug we picked between picking and the insert: pick again.
            if (slug and not private) or "slug" not in exc.errors:
                raise
    raise GraphValidationError({"slug": "could not find a free slug for this graph"})


def _store_generated(
    normalised: NormalisedGraph,
    metadata: dict[str, Any],
    *,
    model: LanguageModel,
    transcoder_set: TranscoderSet | None,
    owner: User | None,
    slug: str,
    visibility: str,
    title: str,
    target: dict[str, Any] | None,
    featured: bool,
    then: Callable[[Graph], None],
) -> Graph:
    graph: Graph | None = None
    try:
        with transaction.atomic():
            graph = store_graph(
                normalised,
                model=model,
                transcoder_set=transcoder_set,
                slug=slug,
                owner=owner,
                visibility=visibility,
                source=Graph.Source.GENERATED,
                title=title,
                target=target,
                scores=metadata.get("scores") or {},
                generation_settings=metadata.get("generation_settings") or {},
                pruning_settings=metadata.get("pruning_settings") or {},
            )
            if featured:
                Graph.objects.filter(pk=graph.pk).update(featured=True)
            then(graph)
    except Exception:
        if graph is not None:
            artifacts.delete(graph.artifact.name or "")  # rolled back; its file must go too
        raise
    return graph


def _finite_numbers(value: Any) -> dict[str, float]:
    """The numeric entries of a file's ``metadata.scores`` (replacement, completeness, ...)."""
    if not isinstance(value, dict):
        return {}
    return {
        str(key)[:50]: float(number)
        for key, number in value.items()
        if isinstance(number, int | float)
        and not isinstance(number, bool)
        and math.isfinite(number)
    }


def _index_nodes(row: Graph, graph: NormalisedGraph) -> None:
    nodes = [
        GraphNode(
            graph=row,
            transcoder_set_id=row.transcoder_set_id,
            node_id=node.node_id,
            layer=node.layer,
            position=node.position,
            feature_index=node.feature_index,
            activation=node.activation,
            influence=node.influence,
        )
        for node in graph.feature_nodes
    ]
    GraphNode.objects.bulk_create(nodes, batch_size=_NODE_BATCH)


def import_graph_bytes(
    data: bytes,
    *,
    model_slug: str | None,
    transcoder_set_slug: str | None = None,
    slug: str | None = None,
    owner: User | None,
    visibility: str = Visibility.PRIVATE,
    source: str = Graph.Source.UPLOAD,
    title: str = "",
    name_privately: bool = False,
) -> Graph:
    """Validate a graph file (JSON or gzipped JSON) and store it. The model comes from
    ``model_slug`` or the file's ``metadata.scan``; the slug from ``slug``, the file's
    ``metadata.slug`` or the prompt (made unique only when not given explicitly).

    ``name_privately`` (what a user's upload sets): a graph that is not public gets
    ``private_slug`` of that name. Admin imports keep the exact name they give."""
    lim = limits()
    # Parse once, find the model (maybe from metadata.scan), then validate against its layers.
    parsed = parse_json(read_limited(io.BytesIO(data), lim.max_bytes))
    if not isinstance(parsed, dict):
        kind = "an array" if isinstance(parsed, list) else type(parsed).__name__
        raise GraphValidationError({"file": f"expected a JSON object (a graph), got {kind}"})
    metadata = parsed.get("metadata") if isinstance(parsed, dict) else None
    metadata = metadata if isinstance(metadata, dict) else None
    if metadata is not None:
        # Before anything is named from it: a path in `scan` or a set's name must not become
        # the slug of a model or set made for this graph.
        metadata = parsed["metadata"] = without_paths(metadata)
    if slug and slugify(slug) != slug:
        raise GraphValidationError(
            {"slug": "use only lowercase letters, numbers, hyphens and underscores"}
        )
    scan = (metadata or {}).get("scan")
    scan = scan if isinstance(scan, str) else ""
    model = None if model_slug else _known_model(scan)
    if model is None and (model_slug or not scan):
        model = resolve_model(model_slug, metadata)  # 400: an unknown model named, or none
    # One transaction: a set or model made for this graph goes if the graph cannot be stored.
    with transaction.atomic():
        if model is None:
            # A graph from another tool, on a model this install does not have: a
            # reference-only model made from the file (graphs/references.py).
            graph = validate_graph(parsed, n_layers=None, limits=lim)
            model = references.create_model(scan, graph)
        else:
            graph = validate_graph(parsed, n_layers=model.n_layers, limits=lim)
        return _store_import(
            graph, model, transcoder_set_slug, slug, owner, visibility, source, title,
            name_privately,
        )  # fmt: skip


def _known_model(scan: str) -> LanguageModel | None:
    """The model a file's ``metadata.scan`` names: by slug, or by the slug of that name
    (``google/gemma-2-2b`` -> ``google-gemma-2-2b``)."""
    names = {scan, slugify(scan.replace("/", "-"))} - {""}
    return LanguageModel.objects.filter(slug__in=names).first() if names else None


def _store_import(
    graph: NormalisedGraph,
    model: LanguageModel,
    transcoder_set_slug: str | None,
    slug: str | None,
    owner: User | None,
    visibility: str,
    source: str,
    title: str,
    name_privately: bool,
) -> Graph:
    if transcoder_set_slug:
        transcoder_set = resolve_transcoder_set(model, transcoder_set_slug)
    else:
        # The set the file names (created when missing: a CLT graph goes under a CLT set, not
        # under the model's default per-layer one), else the model's default.
        transcoder_set = references.find_or_create_set(
            model, graph.metadata, graph
        ) or resolve_transcoder_set(model, None)
    wanted = graph.metadata.get("slug") or graph.metadata["prompt"][:60] or "graph"
    private = name_privately and visibility != Visibility.PUBLIC
    for attempt in range(3):
        try:
            return store_graph(
                graph,
                model=model,
                transcoder_set=transcoder_set,
                slug=private_slug(slug or wanted) if private else slug or free_slug(model, wanted),
                owner=owner,
                visibility=visibility,
                source=source,
                title=title,
            )
        except GraphValidationError as exc:
            # A slug we picked was taken by a concurrent upload in between: pick again.
            if (slug and not private) or "slug" not in exc.errors or attempt == 2:
                raise
    raise AssertionError("unreachable")


def delete_graph(graph: Graph) -> None:
    name, raw = graph.artifact.name, graph.raw_artifact.name
    graph.delete()

    def _remove() -> None:
        artifacts.delete(name or "")
        artifacts.delete(raw or "")

    transaction.on_commit(_remove)


# ---------------------------------------------------------------------------------------------
# Subgraphs


def update_subgraph(subgraph: Subgraph, expected_version: int, changes: dict[str, Any]) -> bool:
    """Apply ``changes`` only if the row is still at ``expected_version``; True when it was.

    A compare-and-set update, so two editors never overwrite each other silently.
    """
    fields = {key: value for key, value in changes.items() if key != "version"}
    updated = Subgraph.objects.filter(pk=subgraph.pk, version=expected_version).update(
        version=F("version") + 1, updated_at=timezone.now(), **fields
    )
    if updated:
        subgraph.refresh_from_db()
    return updated == 1
