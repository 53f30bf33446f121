"""The stored graph artifact: normalised circuit-tracer JSON, gzipped, in Django storage.

Why this form: the browser already decompresses gzip natively, so the stored bytes are served
as they are (``Content-Encoding: gzip``, ETag = SHA-256 of the JSON, conditional GET) with no
work per request; and it is the same schema users export, so there is one format to keep right.
Graphs too large to ship whole are read through ``neighbourhood()``, which keeps a parsed,
indexed copy of the few most recently used graphs in memory. Beside each artifact, storage may
hold the explorer's binary sidecar made from it (graphs/sidecar.py); it goes when the artifact
goes.
"""

from __future__ import annotations

import gzip
import hashlib
import heapq
import json
import threading
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from contract.graph_binary import VERSION as SIDECAR_VERSION

_CACHE_GRAPHS = 4
# Big enough that a read from a bucket is a few requests, small enough to keep memory flat.
_STREAM_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class StoredArtifact:
    name: str
    sha256: str
    raw_bytes: int
    gzip_bytes: int


def encode(document: dict[str, Any]) -> bytes:
    # allow_nan=False: never write an artifact that is not JSON (the parsers refuse non-finite
    # numbers before this; a failure here is a bug, not a half-readable file).
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def write(document: dict[str, Any], *, model_slug: str, slug: str) -> StoredArtifact:
    raw = encode(document)
    # mtime=0: the same graph always gzips to the same bytes.
    packed = gzip.compress(raw, compresslevel=6, mtime=0)
    name = f"graphs/{model_slug}/{slug}-{uuid.uuid4().hex[:8]}.json.gz"
    saved = default_storage.save(name, ContentFile(packed))
    return StoredArtifact(saved, hashlib.sha256(raw).hexdigest(), len(raw), len(packed))


def sidecar_name(name: str) -> str:
    """Where the binary sidecar of the artifact ``name`` is kept (a new artifact, a new name)."""
    return f"{name.removesuffix('.json.gz')}.explorer-v{SIDECAR_VERSION}.bin.gz"


def delete(name: str) -> None:
    """Delete an artifact and its sidecar, if one was made (deleting a missing file is a no-op)."""
    if name:
        default_storage.delete(name)
        default_storage.delete(sidecar_name(name))


def read_gzip(name: str) -> bytes:
    with default_storage.open(name, "rb") as handle:
        return handle.read()


def read_document(name: str) -> dict[str, Any]:
    return json.loads(gzip.decompress(read_gzip(name)))


class BytesCache:
    """The most recently used gzipped artifacts, up to a total size (LRU)."""

    def __init__(self) -> None:
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            data = self._items.get(key)
            if data is not None:
                self._items.move_to_end(key)
            return data

    def put(self, key: str, data: bytes, budget: int) -> None:
        if len(data) > budget:
            return
        with self._lock:
            if key in self._items:
                return
            self._items[key] = data
            self._bytes += len(data)
            while self._bytes > budget:
                _, dropped = self._items.popitem(last=False)
                self._bytes -= len(dropped)


_gzip_cache = BytesCache()


def read_gzip_cached(name: str, sha256: str) -> bytes:
    """The stored gzip bytes, from memory when this process served them recently.

    Safe because an artifact is never rewritten: storing a graph again makes a new name.
    """
    key = f"{name}:{sha256}"
    data = _gzip_cache.get(key)
    if data is None:
        data = read_gzip(name)
        _gzip_cache.put(key, data, settings.ARTIFACT_MEMORY_CACHE_MB * 1024 * 1024)
    return data


def iter_gzip(name: str) -> Iterator[bytes]:
    """The stored gzip bytes in chunks, for a WSGI-style (synchronous) response."""
    with default_storage.open(name, "rb") as handle:
        while chunk := handle.read(_STREAM_CHUNK):
            yield chunk


async def aiter_gzip(name: str) -> AsyncIterator[bytes]:
    """The same chunks for an ASGI response: storage reads (disk or a bucket) block, so each runs
    in a worker thread and the event loop keeps serving other requests meanwhile."""
    handle = await sync_to_async(default_storage.open, thread_sensitive=False)(name, "rb")
    try:
        while chunk := await sync_to_async(handle.read, thread_sensitive=False)(_STREAM_CHUNK):
            yield chunk
    finally:
        await sync_to_async(handle.close, thread_sensitive=False)()


def with_annotations(
    document: dict[str, Any],
    *,
    pinned_ids: list[str],
    supernodes: list[list[str]],
    node_labels: dict[str, str],
    clicked_id: str = "",
) -> dict[str, Any]:
    """The document with a subgraph's pins, supernodes and labels, as other tools read them:
    labels in ``qParams.clerps`` (so a re-upload keeps them as labels) and in the nodes' clerp."""
    out = dict(document)
    q = dict(document.get("qParams") or {})
    q.update(pinnedIds=list(pinned_ids), supernodes=[list(s) for s in supernodes])
    q["clerps"] = [[node_id, label] for node_id, label in node_labels.items()]
    if clicked_id:
        q["clickedId"] = clicked_id
    out["qParams"] = q
    if node_labels:
        out["nodes"] = [
            {**node, "clerp": node_labels[node["node_id"]]}
            if node["node_id"] in node_labels
            else node
            for node in document["nodes"]
        ]
    return out


# ---------------------------------------------------------------------------------------------
# Neighbourhoods of one node, for graphs the browser should not download whole.


@dataclass
class _Indexed:
    nodes: dict[str, dict[str, Any]]
    incoming: dict[str, list[tuple[str, float]]]
    outgoing: dict[str, list[tuple[str, float]]]
    metadata: dict[str, Any]
    qparams: dict[str, Any]
    links: list[dict[str, Any]]
    skeletons: dict[int, bytes]


_cache: OrderedDict[str, _Indexed] = OrderedDict()
_lock = threading.Lock()


def _indexed(name: str, sha256: str) -> _Indexed:
    key = f"{name}:{sha256}"
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    document = read_document(name)
    incoming: dict[str, list[tuple[str, float]]] = {}
    outgoing: dict[str, list[tuple[str, float]]] = {}
    for link in document["links"]:
        incoming.setdefault(link["target"], []).append((link["source"], link["weight"]))
        outgoing.setdefault(link["source"], []).append((link["target"], link["weight"]))
    for edges in (*incoming.values(), *outgoing.values()):
        edges.sort(key=lambda edge: -abs(edge[1]))
    index = _Indexed(
        nodes={n["node_id"]: n for n in document["nodes"]},
        incoming=incoming,
        outgoing=outgoing,
        metadata=document["metadata"],
        qparams=document.get("qParams") or {},
        links=document["links"],
        skeletons={},
    )
    with _lock:
        _cache[key] = index
        while len(_cache) > _CACHE_GRAPHS:
            _cache.popitem(last=False)
    return index


def node_ids(name: str, sha256: str) -> frozenset[str]:
    """Every node id of the graph (what a subgraph's pins, groups and labels may name)."""
    return frozenset(_indexed(name, sha256).nodes)


def nodes_and_links(name: str, sha256: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The graph's nodes and links from the same parsed copy neighbourhoods use, so analyses
    of a graph (supernode suggestions) do not parse its JSON again on every request."""
    index = _indexed(name, sha256)
    return list(index.nodes.values()), index.links


def skeleton(name: str, sha256: str, *, max_links: int) -> bytes:
    """The graph with only its ``max_links`` strongest links (0: none), gzipped JSON.

    For graphs too large to ship whole: the page draws every node, then asks for the links of
    the nodes in focus with ``neighbourhood()``. ``links_total`` says how many there are.
    """
    index = _indexed(name, sha256)
    if max_links not in index.skeletons:
        links = heapq.nlargest(max_links, index.links, key=lambda link: abs(link["weight"]))
        document = {
            "metadata": index.metadata,
            "qParams": index.qparams,
            "nodes": list(index.nodes.values()),
            "links": links,
            "links_total": len(index.links),
        }
        index.skeletons[max_links] = gzip.compress(encode(document), compresslevel=6, mtime=0)
    return index.skeletons[max_links]


def neighbourhood(
    name: str, sha256: str, node_ids: list[str], *, direction: str, limit: int
) -> dict[str, Any] | None:
    """The nodes, their strongest ``limit`` links each way, and the nodes at the other ends.

    None when any of ``node_ids`` is not in the graph.
    """
    index = _indexed(name, sha256)
    if any(node_id not in index.nodes for node_id in node_ids):
        return None
    links: list[dict[str, Any]] = []
    seen = dict.fromkeys(node_ids)
    for node_id in node_ids:
        if direction in ("in", "both"):
            for source, weight in index.incoming.get(node_id, [])[:limit]:
                links.append({"source": source, "target": node_id, "weight": weight})
                seen[source] = None
        if direction in ("out", "both"):
            for target, weight in index.outgoing.get(node_id, [])[:limit]:
                links.append({"source": node_id, "target": target, "weight": weight})
                seen[target] = None
    return {
        "node_ids": node_ids,
        "nodes": [index.nodes[node_id] for node_id in seen],
        "links": links,
        "in_degree": {n: len(index.incoming.get(n, [])) for n in node_ids},
        "out_degree": {n: len(index.outgoing.get(n, [])) for n in node_ids},
    }
