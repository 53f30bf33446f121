"""The explorer's binary sidecar of a stored graph (contract/graph_binary.py), kept in storage.

Made when the graph is stored (from the document in hand), or else from the artifact the first
time it is asked for (graphs stored before sidecars, or whose sidecar went missing); gzipped as
the artifact is and saved beside it (``artifacts.sidecar_name``) in the same storage, so every
web process and a restart find it there. A graph stored again has a new artifact, hence a new
sidecar. What is read back from storage is checked before it is served (its header, the
artifact's SHA-256 it names and the CRC-32 of its bytes): a damaged or missing sidecar is made
again, never sent.
"""

from __future__ import annotations

import gzip
import logging
import threading
import zlib
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from contract import graph_binary
from graphs import artifacts

logger = logging.getLogger(__name__)

# Sidecars this process has checked (gzip bytes), so a busy graph is not read and checked again.
_checked = artifacts.BytesCache()
# One build per artifact at a time in this process (others wait for it instead of repeating it).
_building: dict[str, threading.Lock] = {}
_building_lock = threading.Lock()


def etag(artifact_sha256: str) -> str:
    """Keyed on the artifact's bytes, as the artifact's own ETag is, and on the sidecar version."""
    return f'"{artifact_sha256}-explorer-v{graph_binary.VERSION}"'


def _stored(name: str, artifact_sha256: str) -> bytes | None:
    """The stored sidecar's gzip bytes if they are whole and were made from this artifact."""
    if not default_storage.exists(name):
        return None
    try:
        packed = artifacts.read_gzip(name)
        graph_binary.verify(gzip.decompress(packed), artifact_sha256=artifact_sha256)
    except (OSError, EOFError, zlib.error, graph_binary.GraphBinaryError) as exc:
        logger.warning("graph sidecar %s is unusable (%s): making it again", name, exc)
        return None
    return packed


def _save(document: dict[str, Any], artifact_sha256: str, name: str) -> bytes:
    data = graph_binary.encode(document, artifact_sha256=artifact_sha256)
    # mtime=0: the same artifact always gives the same bytes, whichever process makes them.
    packed = gzip.compress(data, compresslevel=6, mtime=0)
    default_storage.delete(name)  # a damaged one; storage would otherwise save under a new name
    saved = default_storage.save(name, ContentFile(packed))
    if saved != name:  # another process saved the same bytes in between: keep one copy
        default_storage.delete(saved)
    return packed


def store(document: dict[str, Any], artifact: artifacts.StoredArtifact) -> None:
    """Make the sidecar of a graph as it is stored (``artifacts.write`` just wrote ``document``).

    A document that cannot have one is only logged: the graph is stored all the same, and its
    sidecar request answers 404, so the page reads the JSON.
    """
    try:
        _save(document, artifact.sha256, artifacts.sidecar_name(artifact.name))
    except graph_binary.GraphBinaryError as exc:
        logger.warning("graph %s gets no sidecar: %s", artifact.name, exc)


def sidecar_gzip(artifact_name: str, artifact_sha256: str) -> bytes:
    """The gzipped sidecar of that artifact, made and stored if it is not there or not whole.

    Raises ``graph_binary.GraphBinaryError`` when the artifact cannot be encoded.
    """
    key = f"{artifact_name}:{artifact_sha256}"
    if (packed := _checked.get(key)) is not None:
        return packed
    with _building_lock:
        lock = _building.setdefault(key, threading.Lock())
    with lock:
        if (packed := _checked.get(key)) is None:
            name = artifacts.sidecar_name(artifact_name)
            packed = _stored(name, artifact_sha256) or _save(
                artifacts.read_document(artifact_name), artifact_sha256, name
            )
            _checked.put(key, packed, settings.ARTIFACT_MEMORY_CACHE_MB * 1024 * 1024)
    with _building_lock:
        _building.pop(key, None)
    return packed
