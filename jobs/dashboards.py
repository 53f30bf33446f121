"""The ``dashboards`` job, web side: the request, its corpus, and each finished layer's import.

``POST /api/v1/models/{model}/sets/{set}/dashboards`` (staff or the set's owner) validates a
request into ``contract.params.DashboardsParams``. The corpus is an upload (checked whole, then
kept in file storage under a name made from its SHA-256, so a worker on another machine reads it
through the same storage) or a server path under ``DASHBOARDS_CORPUS_ROOTS`` (checked: inside a
root once symlinks are resolved, present, each file's start UTF-8 text). The worker
(inference/dashboards_task.py) computes the dashboards and calls ``import_layer`` for each layer
as it is done: a layer's features and examples and the job's note of it commit together, or not at
all, so a cancel or a crash never leaves half a layer.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.base import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.text import get_valid_filename
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import permissions, serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from contract.corpus import SNIFF_BYTES, SUFFIXES, head_problem, stream_problem, suffix_problem
from contract.params import DashboardsParams
from core.api import Conflict, PayloadTooLarge, UploadThrottle, error_body
from features.importers.writer import import_features
from features.models import LanguageModel, TranscoderSet
from jobs import services
from jobs.models import Job
from jobs.serializers import JobSerializer, StrictSerializer, bounded
from jobs.views import too_many_jobs

# Uploads are stored under this prefix of the default storage.
UPLOAD_PREFIX = "dashboards/corpora"
# A gzipped upload may hold at most this many times its own size in text.
GZIP_RATIO_LIMIT = 20
# Files of a server folder checked before the job is queued (the worker checks the rest).
MAX_FOLDER_FILES_CHECKED = 1000


def _int(name: str) -> Any:
    return bounded(serializers.IntegerField, DashboardsParams, name)


class DashboardsSerializer(StrictSerializer):
    """Give exactly one of ``corpus_file`` (multipart) or ``corpus_path``."""

    corpus_file = serializers.FileField(
        required=False,
        help_text=f"A corpus upload ({', '.join(SUFFIXES)}), at most DASHBOARDS_UPLOAD_MAX_BYTES.",
    )
    corpus_path = serializers.CharField(
        required=False,
        max_length=4096,
        trim_whitespace=False,
        help_text="A file or folder on the server, under one of DASHBOARDS_CORPUS_ROOTS.",
    )
    text_field = serializers.CharField(
        max_length=100, default="text", help_text="The document field of .jsonl lines."
    )
    layers = serializers.ListField(
        child=serializers.IntegerField(min_value=0, max_value=10_000),
        required=False,
        max_length=10_000,
        help_text="Layers to compute (default: every layer).",
    )
    max_tokens = _int("max_tokens")
    top_k = _int("top_k")
    context = _int("context")
    window = _int("window")
    n_intervals = _int("n_intervals")
    examples_per_interval = _int("examples_per_interval")
    batch_size = _int("batch_size")
    seed = _int("seed")

    def validate_max_tokens(self, value: int) -> int:
        if value > settings.DASHBOARDS_MAX_TOKENS:
            raise serializers.ValidationError(
                f"at most {settings.DASHBOARDS_MAX_TOKENS:,} tokens on this server "
                "(DASHBOARDS_MAX_TOKENS)"
            )
        return value

    def validate_text_field(self, value: str) -> str:
        if not value.strip() or "\x00" in value:
            raise serializers.ValidationError("give the name of the .jsonl lines' text field")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        transcoder_set: TranscoderSet = self.context["transcoder_set"]
        n_layers = transcoder_set.model.n_layers
        layers = sorted(set(attrs.get("layers", [])))
        if any(layer >= n_layers for layer in layers):
            raise serializers.ValidationError(
                {"layers": f"{transcoder_set.model.slug} has layers 0..{n_layers - 1}"}
            )
        attrs["layers"] = layers
        if ("corpus_file" in attrs) == ("corpus_path" in attrs):
            raise serializers.ValidationError(
                {"corpus_file": "give exactly one of corpus_file (an upload) or corpus_path"}
            )
        if "corpus_path" in attrs:
            attrs["corpus_path"] = str(check_server_path(attrs["corpus_path"], attrs["text_field"]))
        return attrs

    def params(self, corpus: dict[str, str]) -> DashboardsParams:
        """The job's parameters, with the corpus fields of ``store_upload`` or the path's."""
        data = self.validated_data
        names = (
            "text_field", "layers", "max_tokens", "top_k", "context", "window", "n_intervals",
            "examples_per_interval", "batch_size", "seed",
        )  # fmt: skip
        return DashboardsParams.from_dict({**{name: data[name] for name in names}, **corpus})


# ---------------------------------------------------------------------------------------------
# The corpus


def _path_error(message: str) -> serializers.ValidationError:
    return serializers.ValidationError({"corpus_path": message})


def _roots() -> list[Path]:
    return [Path(os.path.realpath(root)) for root in settings.DASHBOARDS_CORPUS_ROOTS]


def _inside_roots(path: Path, roots: list[Path]) -> bool:
    real = Path(os.path.realpath(path))
    return any(real.is_relative_to(root) for root in roots)


def _file_head(path: Path) -> bytes:
    opener: Any = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as handle:
        head: bytes = handle.read(SNIFF_BYTES)
    return head


def check_server_path(text: str, text_field: str) -> Path:
    """The corpus at ``text`` on this server, or a 400 on ``corpus_path`` saying what is wrong.

    Inside a root is decided on the real path (symlinks resolved) before anything else, so the
    answer never tells whether a file outside the roots exists.
    """
    if "\x00" in text or not text.strip():
        raise _path_error("give the absolute path of a corpus file or folder")
    path = Path(text)
    roots = _roots()
    where = " or ".join(str(root) for root in settings.DASHBOARDS_CORPUS_ROOTS) or "(none set)"
    if not path.is_absolute():
        raise _path_error(f"give an absolute path under {where}")
    if not roots or not _inside_roots(path, roots):
        raise _path_error(
            f"outside the folders corpora may be read from (DASHBOARDS_CORPUS_ROOTS: {where})"
        )
    if not path.exists():
        raise _path_error(f"{path}: not found")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(SUFFIXES))
        if not files:
            raise _path_error(f"{path}: no {', '.join(SUFFIXES)} files in this folder")
    elif path.is_file():
        files = [path]
        if problem := suffix_problem(path.name):
            raise _path_error(f"{path}: {problem}")
    else:
        raise _path_error(f"{path}: not a file or folder")
    for file in files[:MAX_FOLDER_FILES_CHECKED]:
        if not _inside_roots(file, roots):
            raise _path_error(f"{file}: a link to outside DASHBOARDS_CORPUS_ROOTS")
        try:
            head = _file_head(file)
        except (OSError, EOFError) as exc:
            raise _path_error(f"{file}: cannot read ({exc})") from None
        if problem := head_problem(head, whole=len(head) < SNIFF_BYTES):
            raise _path_error(f"{file}: {problem}")
    return path


def _hashed(chunks: Iterator[bytes], digest: Any) -> Iterator[bytes]:
    for chunk in chunks:
        digest.update(chunk)
        yield chunk


def store_upload(upload: File, text_field: str) -> dict[str, str]:
    """Check a corpus upload whole and keep it in file storage; the job's corpus fields.

    Stored under its SHA-256, so the same file uploaded twice is stored once and its rerun
    finds the first run's checkpoint.
    """
    limit = settings.DASHBOARDS_UPLOAD_MAX_BYTES
    if upload.size is not None and upload.size > limit:
        raise PayloadTooLarge(
            error_body(
                f"corpus_file: larger than the limit of {limit:,} bytes",
                {"corpus_file": f"larger than the limit of {limit:,} bytes"},
            )
        )
    name = get_valid_filename(Path(upload.name or "corpus.txt").name)[:200]
    digest = hashlib.sha256()
    problem = stream_problem(
        name,
        _hashed(upload.chunks(), digest),
        text_field=text_field,
        max_bytes=max(limit, 1) * GZIP_RATIO_LIMIT,
    )
    if problem is not None:
        raise serializers.ValidationError({"corpus_file": f"{name}: {problem}"})
    sha = digest.hexdigest()
    stored = f"{UPLOAD_PREFIX}/{sha}/{name}"
    if not default_storage.exists(stored):
        upload.seek(0)
        stored = default_storage.save(stored, upload)
    return {"corpus": stored, "corpus_source": "upload", "corpus_name": name, "corpus_sha256": sha}


# ---------------------------------------------------------------------------------------------
# The API


def set_or_404(request: Any, model: str, set_slug: str) -> TranscoderSet:
    """The transcoder set, if its model is visible to the user (404 otherwise)."""
    found = get_object_or_404(LanguageModel.objects.visible_to(request.user), slug=model)
    return get_object_or_404(
        TranscoderSet.objects.select_related("model", "owner"), model=found, slug=set_slug
    )


def active_job(transcoder_set: TranscoderSet) -> Job | None:
    """The set's queued or running dashboards job, if any (one at a time per set)."""
    return (
        Job.objects.active()
        .filter(kind=Job.Kind.DASHBOARDS, transcoder_set=transcoder_set)
        .order_by("created_at")
        .first()
    )


class DashboardsView(APIView):
    """Queue a dashboards job for a transcoder set (docs/dashboards.md); 202 with the job.

    Only staff and the set's owner may (403 for other users; 404 when the model is not visible
    or the set does not exist); one job per set at a time (409 while another is queued or
    running)."""

    permission_classes = [permissions.IsAuthenticated]
    throttle_classes = [UploadThrottle]

    @extend_schema(
        request={
            "multipart/form-data": DashboardsSerializer,
            "application/json": DashboardsSerializer,
        },
        responses={202: JobSerializer, 409: OpenApiResponse(), 413: OpenApiResponse()},
    )
    def post(self, request: Request, model: str, set_slug: str) -> Response:
        transcoder_set = set_or_404(request, model, set_slug)
        if not transcoder_set.can_manage(request.user):
            raise PermissionDenied("only staff and the set's owner may compute its dashboards")
        form = DashboardsSerializer(
            data=request.data, context={"request": request, "transcoder_set": transcoder_set}
        )
        form.is_valid(raise_exception=True)
        running = active_job(transcoder_set)
        if running is not None:
            raise Conflict(
                error_body(
                    f"a dashboards job for {transcoder_set} is already {running.status}: "
                    f"/api/v1/jobs/{running.id}",
                    job=str(running.id),
                )
            )
        if "corpus_file" in form.validated_data:
            corpus = store_upload(
                form.validated_data["corpus_file"], form.validated_data["text_field"]
            )
        else:
            corpus = {"corpus": form.validated_data["corpus_path"], "corpus_source": "path"}
        try:
            (job,) = services.create_jobs(
                kind=Job.Kind.DASHBOARDS,
                owner=request.user,  # type: ignore[arg-type]
                model=transcoder_set.model,
                transcoder_set=transcoder_set,
                params=[form.params(corpus).to_dict()],
            )
        except services.TooManyJobs as exc:
            return too_many_jobs(exc)
        body = JobSerializer(job).data
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": body["url"]})


# ---------------------------------------------------------------------------------------------
# Worker side


def import_layer(run: services.Run, path: Path, layer: int) -> int:
    """Import one finished layer's ``layer_{i}.jsonl.gz`` into the job's set, replacing what
    those features had, and note the layer on the job, in one transaction; returns the features
    written. Raises ``services.JobLost`` (and keeps nothing) when the job was cancelled or taken
    over meanwhile: its row is checked last, and then stays locked until the commit, so a cancel
    waits for the layer instead of cutting it."""
    job = run.job
    params = DashboardsParams.from_dict(job.params)
    assert job.transcoder_set is not None
    result = dict(job.result or {})
    with transaction.atomic():
        progress = import_features(
            job.transcoder_set, [path], replace=True, max_examples=params.examples_per_feature
        )
        written = progress.created + progress.updated
        result["layers"] = sorted({*result.get("layers", []), layer})
        result["features"] = result.get("features", 0) + written
        if not run.mine().update(result=result, heartbeat_at=timezone.now()):
            raise services.JobLost
    job.result = result
    return written
