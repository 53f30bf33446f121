"""POST /api/v1/models/{model}/sets/{set}/dashboards: who may start it, every bad input as a 400
naming its field, the corpus kept in file storage or read from an allowed server path, and the
job row the worker reads."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.storage import default_storage
from rest_framework.test import APIClient

from contract.params import DashboardsParams
from core.visibility import Visibility
from features.models import LanguageModel, TranscoderSet
from jobs.models import Job
from tests.conftest import client_for

URL = "/api/v1/models/tiny/sets/plt/dashboards"
TEXT = b"w5 w6 w7\nw8 w9 w10\n"


@pytest.fixture(autouse=True)
def _storage(settings: Any, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = str(tmp_path / "media")
    root = tmp_path / "corpora"
    root.mkdir()
    settings.DASHBOARDS_CORPUS_ROOTS = [root]
    return root


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "corpora"


@pytest.fixture
def tset(alice: User) -> TranscoderSet:
    lm = LanguageModel.objects.create(
        slug="tiny", display_name="Tiny", n_layers=3, d_model=16, vocab_size=48
    )
    ts = TranscoderSet.objects.create(model=lm, slug="plt", features_per_layer=40, owner=alice)
    lm.default_transcoder_set = ts
    lm.save(update_fields=["default_transcoder_set"])
    return ts


def upload(name: str, data: bytes) -> io.BytesIO:
    handle = io.BytesIO(data)
    handle.name = name
    return handle


def post_file(client: APIClient, name: str, data: bytes, **fields: Any) -> Any:
    return client.post(URL, {"corpus_file": upload(name, data), **fields}, format="multipart")


def post_path(client: APIClient, path: Path | str, **fields: Any) -> Any:
    return client.post(URL, {"corpus_path": str(path), **fields}, format="json")


def field_error(response: Any, field: str) -> str:
    assert response.status_code == 400, response.content
    body = response.json()
    assert field in body["detail"], body
    assert body["error"].startswith(f"{field}: ")
    return str(body["detail"][field])


# Success ---------------------------------------------------------------------------------------


def test_the_owner_uploads_a_corpus_and_gets_a_queued_job_on_the_models_gpu_queue(
    as_alice: APIClient,
    tset: TranscoderSet,
    sent: list[Job],
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = post_file(as_alice, "notes.txt", TEXT, max_tokens=5000, layers=[2, 0])
    assert response.status_code == 202, response.content
    job = Job.objects.get(pk=response.json()["id"])
    assert response["Location"] == f"/api/v1/jobs/{job.id}"
    assert (job.kind, job.queue, job.transcoder_set, job.status) == (
        "dashboards", "gpu.tiny", tset, "queued"
    )  # fmt: skip
    assert sent == [job]
    params = DashboardsParams.from_dict(job.params)
    sha = hashlib.sha256(TEXT).hexdigest()
    assert (params.corpus_source, params.corpus_name, params.corpus_sha256) == (
        "upload", "notes.txt", sha
    )  # fmt: skip
    assert params.corpus == f"dashboards/corpora/{sha}/notes.txt"
    assert (params.layers, params.max_tokens, params.top_k) == ([0, 2], 5000, 20)
    with default_storage.open(params.corpus, "rb") as stored:
        assert stored.read() == TEXT


def test_the_same_file_uploaded_twice_is_stored_once(
    as_alice: APIClient, tset: TranscoderSet, sent: list[Job]
) -> None:
    first = post_file(as_alice, "a.txt", TEXT)
    Job.objects.update(status=Job.Status.CANCELLED)
    second = post_file(as_alice, "a.txt", TEXT)
    assert first.json()["params"]["corpus"] == second.json()["params"]["corpus"]
    folder = Path(default_storage.path(first.json()["params"]["corpus"])).parent
    assert [p.name for p in folder.iterdir()] == ["a.txt"]


def test_staff_may_start_it_with_a_server_folder_under_the_roots(
    tset: TranscoderSet, root: Path, sent: list[Job]
) -> None:
    staff = User.objects.create_user("sam", is_staff=True)
    (root / "web").mkdir()
    (root / "web" / "a.jsonl").write_text('{"text": "w5 w6"}\n')
    with gzip.open(root / "web" / "b.txt.gz", "wt") as out:
        out.write("w7 w8\n")
    response = post_path(client_for(staff), root / "web")
    assert response.status_code == 202, response.content
    params = response.json()["params"]
    assert (params["corpus"], params["corpus_source"]) == (str(root / "web"), "path")


def test_gzipped_and_jsonl_uploads_are_accepted(
    as_alice: APIClient, tset: TranscoderSet, sent: list[Job]
) -> None:
    assert post_file(as_alice, "a.txt.gz", gzip.compress(TEXT)).status_code == 202
    Job.objects.update(status=Job.Status.CANCELLED)
    assert (
        post_file(as_alice, "b.jsonl", b'{"body": "w5 w6"}\n', text_field="body").status_code == 202
    )


# Who may ----------------------------------------------------------------------------------------


def test_another_user_gets_403(tset: TranscoderSet, bob: User, sent: list[Job]) -> None:
    response = post_file(client_for(bob), "a.txt", TEXT)
    assert response.status_code == 403
    assert "owner" in response.json()["error"]
    assert not Job.objects.exists()


def test_a_set_without_an_owner_is_for_staff_only(
    as_alice: APIClient, tset: TranscoderSet, sent: list[Job]
) -> None:
    TranscoderSet.objects.update(owner=None)
    assert post_file(as_alice, "a.txt", TEXT).status_code == 403


def test_anonymous_requests_are_refused(anon: APIClient, tset: TranscoderSet) -> None:
    assert post_file(anon, "a.txt", TEXT).status_code in (401, 403)
    assert not Job.objects.exists()


def test_a_private_model_or_a_missing_set_is_404(as_alice: APIClient, tset: TranscoderSet) -> None:
    LanguageModel.objects.update(visibility=Visibility.PRIVATE)
    assert post_file(as_alice, "a.txt", TEXT).status_code == 404
    LanguageModel.objects.update(visibility=Visibility.PUBLIC)
    response = as_alice.post("/api/v1/models/tiny/sets/nope/dashboards", {}, format="json")
    assert response.status_code == 404


def test_a_second_job_while_one_is_active_is_409(
    as_alice: APIClient, tset: TranscoderSet, sent: list[Job]
) -> None:
    first = post_file(as_alice, "a.txt", TEXT).json()
    response = post_file(as_alice, "a.txt", TEXT)
    assert response.status_code == 409
    assert response.json()["job"] == first["id"]
    assert Job.objects.count() == 1


# Bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("a.txt", b"", "empty"),
        ("a.txt", b"  \n\n ", "empty"),
        ("a.txt", b"w5 \x00\x01\x02", "binary"),
        ("a.txt", "w5 caf\u00e9".encode("latin-1"), "not UTF-8"),
        ("a.txt", b"w5 " * 5000 + "\u00e9".encode("latin-1"), "not UTF-8"),
        ("a.pdf", b"%PDF-1.4", "unsupported corpus file"),
        ("a.txt.gz", b"not gzip at all", "gzip"),
        ("a.txt.gz", gzip.compress(TEXT)[:-6], "gzip"),
        ("a.jsonl", b'{"text": "w5"}\n{"text": \n', "line 2: not valid JSON"),
        ("a.jsonl", b'{"title": "w5"}\n', "line 1: no string field 'text'"),
    ],
)
def test_a_bad_upload_is_a_400_on_corpus_file(
    as_alice: APIClient, tset: TranscoderSet, sent: list[Job], name: str, data: bytes, message: str
) -> None:
    assert message in field_error(post_file(as_alice, name, data), "corpus_file")
    assert not Job.objects.exists()


def test_an_upload_over_the_limit_is_413(
    as_alice: APIClient, tset: TranscoderSet, settings: Any
) -> None:
    settings.DASHBOARDS_UPLOAD_MAX_BYTES = 1024
    response = post_file(as_alice, "a.txt", b"w5 " * 1000)
    assert response.status_code == 413
    assert "corpus_file" in response.json()["detail"]


def test_a_gzip_bomb_is_refused(as_alice: APIClient, tset: TranscoderSet, settings: Any) -> None:
    settings.DASHBOARDS_UPLOAD_MAX_BYTES = 4096
    bomb = gzip.compress(b"w5 " * 100_000)
    assert len(bomb) < 4096
    assert "decompressed" in field_error(post_file(as_alice, "a.txt.gz", bomb), "corpus_file")


def test_server_paths_outside_the_roots_missing_or_bad_are_400s(
    as_alice: APIClient, tset: TranscoderSet, root: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("w5 w6\n")
    (root / "escape.txt").symlink_to(outside)
    (root / "folder").mkdir()
    (root / "folder" / "inner.txt").symlink_to(outside)
    (root / "binary.txt").write_bytes(b"\x00\x01")
    (root / "latin.txt").write_bytes("caf\u00e9\n".encode("latin-1"))
    (root / "empty.txt").write_bytes(b"")
    (root / "nothing").mkdir()
    (root / "notes.doc").write_text("w5")
    cases = {
        str(outside): "outside the folders",
        str(root / ".." / "secret.txt"): "outside the folders",
        str(root / "escape.txt"): "outside the folders",
        str(root / "folder"): "a link to outside",
        "relative/path.txt": "absolute path",
        str(root / "missing.txt"): "not found",
        str(root / "binary.txt"): "binary",
        str(root / "latin.txt"): "not UTF-8",
        str(root / "empty.txt"): "empty",
        str(root / "nothing"): "no .txt",
        str(root / "notes.doc"): "unsupported corpus file",
        "": "blank",
    }
    for path, message in cases.items():
        assert message in field_error(post_path(as_alice, path), "corpus_path"), path
    assert not Job.objects.exists()


def test_nothing_outside_the_roots_is_told_apart(
    as_alice: APIClient, tset: TranscoderSet, tmp_path: Path
) -> None:
    """A file outside the roots and a missing one outside them get the same answer."""
    (tmp_path / "real.txt").write_text("w5\n")
    real = field_error(post_path(as_alice, tmp_path / "real.txt"), "corpus_path")
    missing = field_error(post_path(as_alice, tmp_path / "missing.txt"), "corpus_path")
    assert real == missing


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"layers": [3]}, "layers", "layers 0..2"),
        ({"layers": [-1]}, "layers[0]", "greater than or equal to 0"),
        ({"max_tokens": 10}, "max_tokens", "greater than or equal to 64"),
        ({"max_tokens": 10**9}, "max_tokens", "DASHBOARDS_MAX_TOKENS"),
        ({"top_k": 0}, "top_k", ""),
        ({"context": 1}, "context", ""),
        ({"window": -1}, "window", ""),
        ({"batch_size": 0}, "batch_size", ""),
        ({"n_intervals": 0}, "n_intervals", ""),
        ({"examples_per_interval": 100}, "examples_per_interval", ""),
        ({"seed": "x"}, "seed", ""),
        ({"text_field": " "}, "text_field", ""),
        ({"colour": "red"}, "colour", "unknown field"),
    ],
)
def test_bad_settings_are_400s_naming_the_field(
    as_alice: APIClient,
    tset: TranscoderSet,
    root: Path,
    settings: Any,
    fields: dict[str, Any],
    field: str,
    message: str,
) -> None:
    settings.DASHBOARDS_MAX_TOKENS = 1_000_000
    (root / "a.txt").write_text("w5 w6\n")
    response = post_path(as_alice, root / "a.txt", **fields)
    assert message in field_error(response, field)
    assert not Job.objects.exists()


def test_a_corpus_is_required_and_only_one(
    as_alice: APIClient, tset: TranscoderSet, root: Path
) -> None:
    (root / "a.txt").write_text("w5 w6\n")
    assert "exactly one of" in field_error(as_alice.post(URL, {}, format="json"), "corpus_file")
    both = {"corpus_path": str(root / "a.txt"), "corpus_file": upload("a.txt", TEXT)}
    response = as_alice.post(URL, both, format="multipart")
    assert "exactly one of" in field_error(response, "corpus_file")


def test_the_worker_reads_an_upload_from_a_storage_without_local_paths(
    settings: Any, tmp_path: Path
) -> None:
    """A bucket has no local path: the worker copies the upload under DASHBOARDS_WORK_DIR,
    checked against its hash."""
    from django.core.files.base import ContentFile

    from inference.dashboards_task import local_corpus

    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
    }
    settings.DASHBOARDS_WORK_DIR = tmp_path / "work"
    sha = hashlib.sha256(TEXT).hexdigest()
    name = default_storage.save(f"dashboards/corpora/{sha}/a.txt", ContentFile(TEXT))
    params = DashboardsParams(
        corpus=name, corpus_source="upload", corpus_name="a.txt", corpus_sha256=sha
    )
    local = local_corpus(params)
    assert local == tmp_path / "work" / "corpora" / sha / "a.txt"
    assert local.read_bytes() == TEXT
    os.utime(local, (0, 0))
    assert local_corpus(params) == local  # copied once
    default_storage.delete(name)
    local.unlink()
    with pytest.raises(ValueError, match="upload it again"):
        local_corpus(params)
