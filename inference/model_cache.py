"""What a worker process has loaded: the engine (imported on first use) and its models (LRU).

Nothing here imports torch or the engine at module level: the worker's parent process stays free
of CUDA, and each pool child loads the engine, and the models it is asked for, on first use. A
child keeps the last ``JOBS_WORKER_MODEL_CACHE`` models loaded.
"""

from __future__ import annotations

import gc
import threading
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

if TYPE_CHECKING:
    from features.models import LanguageModel, TranscoderSet
    from inference.engine import ReplacementModel

# (model id, model source, set id, set source) -> loaded replacement model, most recent last.
_models: OrderedDict[tuple[Any, ...], ReplacementModel] = OrderedDict()
_models_lock = threading.Lock()


class EngineUnavailable(RuntimeError):
    """The engine (torch, transformers) could not be imported in this process."""


_engine_broken = False


def engine_broken() -> bool:
    """Whether an engine import failed in this process (torch is then unusable here)."""
    return _engine_broken


def load_engine() -> Any:
    """The engine module, imported now if this process has not yet."""
    global _engine_broken
    try:
        from inference import engine
    except BaseException as exc:
        _engine_broken = True
        if isinstance(exc, SoftTimeLimitExceeded):
            raise
        raise EngineUnavailable(
            f"this worker could not load the engine ({type(exc).__name__}: {exc}); "
            "try again, another worker process will take the job"
        ) from exc
    return engine


def _resolve(source: str) -> str:
    """A relative local path is relative to the project root; hub ids and URIs pass through."""
    if not source or source.startswith("hf://"):
        return source
    path = Path(source)
    if path.is_absolute():
        return source
    candidate = Path(settings.BASE_DIR) / path
    return str(candidate) if candidate.exists() else source


def _device() -> str:
    import torch

    if settings.JOBS_WORKER_DEVICE == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(settings.JOBS_WORKER_DEVICE)


def _configure_torch() -> None:
    """CPU threads for this process (JOBS_WORKER_TORCH_THREADS), once, before the first model.

    On a CPU worker one thread is the default: on the 2-core test machine, shared with other
    work, the demo model's graph took 86 ms with one thread and 695 ms with two.
    """
    global _torch_configured
    if _torch_configured:
        return
    import torch

    threads = settings.JOBS_WORKER_TORCH_THREADS
    if threads == 0 and _device() == "cpu":
        threads = 1
    if threads > 0:
        torch.set_num_threads(threads)
    _torch_configured = True


_torch_configured = False


def load_model(model: LanguageModel, transcoder_set: TranscoderSet) -> ReplacementModel:
    """The replacement model for (model, set), from this process's LRU cache or loaded now."""
    key = (model.pk, model.source, transcoder_set.pk, transcoder_set.source)
    with _models_lock:
        if key in _models:
            _models.move_to_end(key)
            return _models[key]
    import torch

    from inference.engine import ReplacementModel

    _configure_torch()

    dtype = getattr(torch, settings.JOBS_WORKER_DTYPE)
    loaded = ReplacementModel.load(
        _resolve(model.source), _resolve(transcoder_set.source), device=_device(), dtype=dtype
    )
    with _models_lock:
        _models[key] = loaded
        while len(_models) > settings.JOBS_WORKER_MODEL_CACHE:
            _models.popitem(last=False)
    if len(_models) >= settings.JOBS_WORKER_MODEL_CACHE:
        free_memory()
    return loaded


def free_memory() -> None:
    """Give back what dropped models (or a failed job) left: Python garbage and CUDA's cache."""
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
