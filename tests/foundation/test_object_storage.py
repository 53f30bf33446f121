"""Scale-out without a shared disk: a worker and the web server that share nothing but Postgres,
Redis and an S3-compatible bucket (moto's standalone server on loopback). The worker's graph goes
to the bucket and the web serves it from there with its ETag and gzip."""

from __future__ import annotations

import contextlib
import gzip
import http.client
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from django.contrib.auth.models import User

from contract import graph_binary
from features.models import LanguageModel
from graphs import artifacts
from graphs.models import Graph
from tests.foundation.conftest import ROOT, free_port
from tests.jobs.conftest import register_model, start_worker, tiny_pack, wait_for
from tests.processes import child_env
from webapp.auth import create_token

__all__ = ["tiny_pack"]  # the fixture, used by name below

pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SLUG = "tiny-s3"
BUCKET = "atlas-test"
# The worker's first job imports torch and loads the model: generous on a busy machine.
FIRST_JOB_S = 180


def _wait_http(port: int, path: str, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{what} exited during start-up")
        with contextlib.suppress(OSError):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            conn.getresponse().read()
            conn.close()
            return
        time.sleep(0.2)
    raise AssertionError(f"{what} did not answer within 60 s")


@contextlib.contextmanager
def _running(
    command: list[str], env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture
def s3_server(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A real S3-compatible server (moto's) on loopback with an empty bucket; its settings."""
    port = free_port()
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    log = tmp_path / "s3.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_http(port, "/", process, "the S3 server")
        settings = {
            "MEDIA_STORAGE": "s3",
            "S3_BUCKET": BUCKET,
            "S3_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "S3_ACCESS_KEY_ID": "test-key",
            "S3_SECRET_ACCESS_KEY": "test-secret",
            "S3_ADDRESSING_STYLE": "path",
        }
        bucket(settings).create()
        yield settings
    finally:
        process.terminate()
        process.wait(timeout=20)


def bucket(settings: dict[str, str]) -> Any:
    return boto3.resource(
        "s3",
        endpoint_url=settings["S3_ENDPOINT_URL"],
        aws_access_key_id=settings["S3_ACCESS_KEY_ID"],
        aws_secret_access_key=settings["S3_SECRET_ACCESS_KEY"],
        region_name="us-east-1",
    ).Bucket(BUCKET)


def request(
    port: int, method: str, path: str, headers: dict[str, str], body: Any = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    data = json.dumps(body).encode() if body is not None else None
    if data is not None:
        headers = {**headers, "Content-Type": "application/json"}
    conn.request(method, path, body=data, headers=headers)
    response = conn.getresponse()
    payload = response.read()
    conn.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, payload


def files_under(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file()]


def test_a_graph_made_on_one_machine_is_served_by_another_from_the_bucket(
    tmp_path: Path, s3_server: dict[str, str], tiny_pack: tuple[Path, Path]
) -> None:
    model: LanguageModel = register_model(SLUG, tiny_pack)
    alice = User.objects.create_user("alice", password="pw-alice-123")
    _, token = create_token(alice, "s3 test")
    auth = {"Authorization": f"Bearer {token}"}
    web_media, worker_media = tmp_path / "web-media", tmp_path / "worker-media"
    worker = start_worker([f"gpu.{SLUG}"], tmp_path, **s3_server, MEDIA_ROOT=str(worker_media))
    port = free_port()
    # Every artifact streamed from the bucket (not from the web process's memory cache).
    web_env = child_env(**s3_server, MEDIA_ROOT=str(web_media), ARTIFACT_STREAM_ABOVE_MB="0")
    web = [
        sys.executable, "-m", "uvicorn", "webapp.asgi:application", "--host", "127.0.0.1",
        "--port", str(port), "--lifespan", "off", "--log-level", "warning",
    ]  # fmt: skip
    try:
        with _running(web, web_env, tmp_path / "web.log") as server:
            _wait_http(port, "/healthz", server, "the web server")
            status, _, body = request(
                port,
                "POST",
                "/api/v1/graphs/generate",
                auth,
                {"model": SLUG, "prompt": "w5 w6 w7 w8", "visibility": "public"},
            )
            assert status == 202, (body, (tmp_path / "web.log").read_text())
            job_id = json.loads(body)["id"]

            def done() -> dict[str, Any] | None:
                _, _, raw = request(port, "GET", f"/api/v1/jobs/{job_id}", auth)
                job = json.loads(raw)
                assert job["status"] not in ("failed", "cancelled"), job
                return job if job["status"] == "succeeded" else None

            job = wait_for(done, FIRST_JOB_S, "the worker's graph", worker)
            graph = Graph.objects.get()
            artifact_url = job["graph"]["artifact_url"]

            status, headers, packed = request(
                port, "GET", artifact_url, {"Accept-Encoding": "gzip"}
            )
            assert status == 200, packed[:300]
            assert headers["content-encoding"] == "gzip"
            assert headers["etag"] == f'"{graph.artifact_sha256}"'
            assert int(headers["content-length"]) == len(packed) == graph.artifact_gzip_bytes
            document = json.loads(gzip.decompress(packed))
            assert document["metadata"]["prompt"] == "w5 w6 w7 w8"
            assert len(document["nodes"]) == graph.n_nodes

            status, headers, empty = request(
                port, "GET", artifact_url, {"If-None-Match": f'"{graph.artifact_sha256}"'}
            )
            assert (status, empty, headers["etag"]) == (304, b"", f'"{graph.artifact_sha256}"')

            status, headers, plain = request(port, "GET", artifact_url, {})
            assert status == 200
            assert "content-encoding" not in headers
            assert json.loads(plain) == document

            # The explorer's sidecar, which the worker made as it stored the graph, comes from
            # the bucket too, and decodes to the same graph.
            status, headers, sidecar = request(port, "GET", artifact_url + "/binary", {})
            assert status == 200, sidecar[:300]
            graph_binary.verify(sidecar, artifact_sha256=graph.artifact_sha256)
            assert graph_binary.decode(sidecar)["nodes"] == document["nodes"]
    finally:
        worker.stop()

    # The artifact and its sidecar are in the bucket, and neither machine wrote to its own disk.
    keys = sorted(item.key for item in bucket(s3_server).objects.all())
    name = str(graph.artifact.name)
    assert keys == sorted([name, artifacts.sidecar_name(name)]), keys
    assert all(key.startswith(f"graphs/{SLUG}/") for key in keys)
    assert files_under(web_media) == []
    assert files_under(worker_media) == []
    assert Graph.objects.filter(model=model).count() == 1
