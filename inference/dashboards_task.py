"""The ``dashboards`` job, worker side: the engine's ``compute_dashboards`` over the job's corpus,
each layer imported into the set's features as soon as it is done.

inference/tasks.py runs it like every job on a model (claim, load the model, a readable
failure). Here: the corpus as a local path (an upload is read from file storage, and copied to
``DASHBOARDS_WORK_DIR`` first when the storage is not a local folder, e.g. a bucket), the engine's
checkpoint under ``DASHBOARDS_WORK_DIR/checkpoints``, named by everything the result depends on,
so the same request run again (a re-queued job, or a new job after a cancel or a failure)
continues where the last run stopped, and each finished layer handed to
``jobs.dashboards.import_layer`` (one transaction a layer).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction

from contract.params import DashboardsParams
from inference.failures import JobInputError

if TYPE_CHECKING:
    from inference.engine import ReplacementModel
    from jobs.models import Job
    from jobs.services import Run

CHUNK = 1024 * 1024


def _stored_copy(params: DashboardsParams) -> Path:
    """A local file with the upload's bytes: the storage's own file when it is a local folder,
    else a copy under DASHBOARDS_WORK_DIR/corpora (checked against the upload's SHA-256)."""
    try:
        local = Path(default_storage.path(params.corpus))
    except NotImplementedError:  # a bucket: no local path
        local = None
    if local is not None and local.is_file():
        return local
    target = (
        settings.DASHBOARDS_WORK_DIR / "corpora" / params.corpus_sha256 / Path(params.corpus).name
    )
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    digest = hashlib.sha256()
    try:
        with default_storage.open(params.corpus, "rb") as source, partial.open("wb") as out:
            while chunk := source.read(CHUNK):
                digest.update(chunk)
                out.write(chunk)
    except (FileNotFoundError, OSError) as exc:
        partial.unlink(missing_ok=True)
        raise JobInputError(
            f"corpus: the uploaded {params.corpus_name} cannot be read from file storage "
            f"({type(exc).__name__}); upload it again"
        ) from None
    if digest.hexdigest() != params.corpus_sha256:
        partial.unlink(missing_ok=True)
        raise JobInputError(f"corpus: the stored {params.corpus_name} changed since its upload")
    partial.replace(target)
    return target


def local_corpus(params: DashboardsParams) -> Path:
    if params.corpus_source == "upload":
        return _stored_copy(params)
    return Path(params.corpus)


def _identity(params: DashboardsParams, corpus: Path) -> Any:
    """What the corpus's contexts depend on: an upload's hash, a server path's files as they are
    now (a file changed since the checkpoint means starting over)."""
    from inference.engine.corpus import corpus_files

    if params.corpus_source == "upload":
        return params.corpus_sha256
    return [[str(f), f.stat().st_size, f.stat().st_mtime_ns] for f in corpus_files(corpus)]


def checkpoint_path(job: Job, params: DashboardsParams, corpus: Path) -> Path:
    """Named by everything the result depends on, so only the same request resumes from it."""
    assert job.transcoder_set is not None
    key = {
        "model": [job.model.pk, job.model.source],
        "set": [job.transcoder_set.pk, job.transcoder_set.source],
        "dtype": settings.JOBS_WORKER_DTYPE,
        "corpus": _identity(params, corpus),
        "params": {k: v for k, v in params.to_dict().items() if k not in ("corpus", "corpus_name")},
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]
    return settings.DASHBOARDS_WORK_DIR / "checkpoints" / f"{digest}.safetensors"


def compute(run: Run, rm: ReplacementModel) -> bool:
    """Compute and import the job's dashboards; False when it was cancelled or taken over."""
    from inference import engine
    from jobs import services
    from jobs.dashboards import import_layer

    job = run.job
    params = DashboardsParams.from_dict(job.params)
    if rm.tokenizer is None:
        raise JobInputError(f"{job.model.slug} has no tokenizer to read the corpus with")
    special = rm.special_token_ids()
    if not special:
        raise JobInputError(f"{job.model.slug} defines no special first token for its contexts")
    corpus_path = local_corpus(params)
    try:
        corpus = engine.TokenizedCorpus(
            corpus_path,
            rm.tokenizer,
            special_token=special[0],
            context=params.context,
            max_tokens=params.max_tokens,
            text_field=params.text_field,
        )
        checkpoint = checkpoint_path(job, params, corpus_path)
    except engine.CorpusError as exc:
        raise JobInputError(_named(str(exc), params, corpus_path)) from None
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    out = settings.DASHBOARDS_WORK_DIR / "runs" / str(job.id)
    layers = params.layers or list(range(rm.n_layers))
    done: list[int] = []

    def on_layer(layer: int, features: Iterator[dict[str, Any]]) -> None:
        # The engine asks should_stop only while it streams: ask again between layers.
        if run.should_stop():
            raise engine.DashboardsCancelled("dashboards cancelled")
        path = out / f"layer_{layer}.jsonl.gz"
        engine.write_layer(path, features)
        import_layer(run, path, layer)
        path.unlink()
        done.append(layer)
        run.progress("outputs", len(done) / len(layers))

    try:
        engine.compute_dashboards(
            rm.model,
            rm.transcoders,
            corpus,
            tokenizer=rm.tokenizer,
            layers=params.layers or None,
            top_k=params.top_k,
            tokens_before=params.window,
            tokens_after=params.window,
            n_intervals=params.n_intervals,
            examples_per_interval=params.examples_per_interval,
            batch_size=params.batch_size,
            seed=params.seed,
            checkpoint=checkpoint,
            checkpoint_every=settings.DASHBOARDS_CHECKPOINT_EVERY,
            on_progress=run.progress,
            should_stop=run.should_stop,
            on_layer=on_layer,
        )
    except services.JobLost:
        return False
    except engine.CorpusError as exc:
        raise JobInputError(_named(str(exc), params, corpus_path)) from None
    finally:
        shutil.rmtree(out, ignore_errors=True)
    result = {"layers": sorted(done), "features": (job.result or {}).get("features", 0)}
    try:
        with transaction.atomic():
            run.mark_succeeded(result=result)
    except services.JobLost:
        return False
    run.emit({"type": "done", "result": result})
    return True


def _named(message: str, params: DashboardsParams, corpus: Path) -> str:
    """A corpus error as its owner knows the file: an upload by its name, not the worker's copy."""
    if params.corpus_source == "upload":
        message = message.replace(str(corpus), params.corpus_name)
    return f"corpus: {message}"
