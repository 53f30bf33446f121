"""Malformed settings stop start-up with ImproperlyConfigured naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from webapp import env

ROOT = Path(__file__).resolve().parents[2]


def _import_settings(tmp_path: Path, **overrides: str) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "ATLAS_VAR_DIR": str(tmp_path),
        "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/test",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        **overrides,
    }
    return subprocess.run(
        [sys.executable, "-c", "import webapp.settings"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("DEBUG", "yes please", "DEBUG must be one of"),
        ("DATABASE_URL", "mysql://db/app", "DATABASE_URL must start with postgres://"),
        ("DATABASE_URL", "postgres://host:notaport/db", "DATABASE_URL is not a valid URL"),
        ("REDIS_URL", "localhost:6379", "REDIS_URL must start with redis://"),
        ("PORT", "eighty", "PORT must be an integer"),
        ("PORT", "70000", "PORT must be at most 65535"),
        ("ATLAS_ENV", "staging", "ATLAS_ENV must be one of"),
        ("LOG_LEVEL", "loud", "LOG_LEVEL must be one of"),
        ("MEDIA_STORAGE", "ftp", "MEDIA_STORAGE must be one of"),
    ],
)
def test_it_refuses_a_malformed_value_naming_the_variable(
    tmp_path: Path, variable: str, value: str, message: str
) -> None:
    result = _import_settings(tmp_path, **{variable: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert message in result.stderr


def _python_output(tmp_path: Path, code: str, **overrides: str) -> str:
    """The last line ``code`` prints in a new interpreter with this project's settings and env."""
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "webapp.settings",
            "ATLAS_VAR_DIR": str(tmp_path),
            "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/test",
            "REDIS_URL": "redis://127.0.0.1:6379/0",
            **overrides,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def _visibility_timeout(tmp_path: Path, **overrides: str) -> int:
    """The visibility timeout the Celery app (what a worker and the web process use) is given."""
    script = 'from core.celery import app; print(app.conf.broker_transport_options["visibility_timeout"])'
    return int(_python_output(tmp_path, script, **overrides))


def test_the_visibility_timeout_outlasts_the_longest_job_time_limit(tmp_path: Path) -> None:
    from django.conf import settings

    # The defaults: dashboards jobs (6 h) are the longest, and a message must not come back
    # to another worker while one still runs.
    assert settings.DASHBOARDS_HARD_TIME_LIMIT_S > settings.JOBS_HARD_TIME_LIMIT_S
    assert _visibility_timeout(tmp_path) > settings.DASHBOARDS_HARD_TIME_LIMIT_S
    longer = {"DASHBOARDS_SOFT_TIME_LIMIT_S": "50000", "DASHBOARDS_HARD_TIME_LIMIT_S": "50060"}
    assert _visibility_timeout(tmp_path, **longer) > 50060
    assert _visibility_timeout(tmp_path, JOBS_TIME_LIMITS="big=90000:90060") > 90060
    assert _visibility_timeout(tmp_path, JOBS_HARD_TIME_LIMIT_S="99000") > 99000


def test_it_refuses_a_visibility_timeout_shorter_than_a_job(tmp_path: Path) -> None:
    result = _import_settings(tmp_path, CELERY_VISIBILITY_TIMEOUT="3600")
    assert result.returncode != 0
    assert "CELERY_VISIBILITY_TIMEOUT must be above the longest job time limit" in result.stderr
    assert _visibility_timeout(tmp_path, CELERY_VISIBILITY_TIMEOUT="30000") == 30000


def test_production_refuses_to_start_without_a_secret_key(tmp_path: Path) -> None:
    result = _import_settings(tmp_path, ATLAS_ENV="production", SECRET_KEY="")
    assert result.returncode != 0
    assert "SECRET_KEY must be set when ATLAS_ENV=production" in result.stderr


def test_production_starts_with_a_secret_key_and_debug_off(tmp_path: Path) -> None:
    debug = _python_output(
        tmp_path,
        "from django.conf import settings; print(settings.DEBUG)",
        ATLAS_ENV="production",
        SECRET_KEY="x" * 50,
    )
    assert debug == "False"


def test_local_secret_key_is_generated_once_and_kept(tmp_path: Path) -> None:
    script = "from django.conf import settings; print(settings.SECRET_KEY)"
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "webapp.settings",
        "ATLAS_VAR_DIR": str(tmp_path),
        "SECRET_KEY": "",
    }
    runs = [
        subprocess.run(
            [sys.executable, "-c", script],
            cwd=ROOT,
            env=environment,
            capture_output=True,
            text=True,
        )
        for _ in range(2)
    ]
    assert runs[0].returncode == 0, runs[0].stderr
    assert len(runs[0].stdout.strip()) >= 50
    assert runs[0].stdout == runs[1].stdout
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_manage_py_reports_bad_settings_in_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**os.environ, "ATLAS_VAR_DIR": str(tmp_path), "DEBUG": "maybe"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "ImproperlyConfigured: DEBUG must be one of true/false/1/0/yes/no/on/off, got 'maybe'"
    ]


def test_env_helpers_accept_the_documented_forms(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLAG", " Yes ")
    monkeypatch.setenv("COUNT", "12")
    monkeypatch.setenv("HOSTS", "a.example, b.example,,")
    monkeypatch.setenv("URL", "redis://127.0.0.1:6380/2")
    assert env.env_bool("FLAG", False) is True
    assert env.env_int("COUNT", 0, minimum=1) == 12
    assert env.env_list("HOSTS", []) == ["a.example", "b.example"]
    assert env.env_url("URL", ("redis",)) == "redis://127.0.0.1:6380/2"
    assert env.env_url("UNSET_URL", ("redis",)) is None
    monkeypatch.setenv("COUNT", "0")
    with pytest.raises(ImproperlyConfigured, match="COUNT must be at least 1"):
        env.env_int("COUNT", 5, minimum=1)


def _settings_value(
    tmp_path: Path, expression: str, *, asgi: bool = False, **overrides: str
) -> str:
    # As an ASGI server does: settings imported through webapp.asgi.
    load = "import webapp.asgi; " if asgi else ""
    code = f"{load}from django.conf import settings as s; print({expression})"
    return _python_output(tmp_path, code, **overrides)


def test_the_web_process_pools_connections_instead_of_keeping_one_per_request(
    tmp_path: Path,
) -> None:
    database = (
        "(s.DATABASES['default']['CONN_MAX_AGE'], s.DATABASES['default']['OPTIONS'].get('pool'))"
    )
    web = _settings_value(tmp_path, database, asgi=True, DATABASE_POOL_MAX_SIZE="7")
    assert web == "(0, {'min_size': 2, 'max_size': 7, 'timeout': 10})"
    # Its pool checks a connection without a round trip (core/postgres).
    engine = "s.DATABASES['default']['ENGINE']"
    assert _settings_value(tmp_path, engine, asgi=True) == "core.postgres"
    assert _settings_value(tmp_path, engine, asgi=True, DATABASE_POOL="false") != "core.postgres"
    behind_pgbouncer = _settings_value(tmp_path, database, asgi=True, DATABASE_POOL="false")
    assert behind_pgbouncer == "(0, None)"
    # Workers and commands fork or run one thing at a time: one persistent connection each.
    assert _settings_value(tmp_path, database) == "(60, None)"


def test_the_pool_may_not_outgrow_the_embedded_postgres(tmp_path: Path) -> None:
    result = _import_settings(tmp_path, DATABASE_POOL_MAX_SIZE="500")
    assert "DATABASE_POOL_MAX_SIZE must be at most 50" in result.stderr


def test_bucket_storage_needs_a_bucket_and_both_keys_or_neither(tmp_path: Path) -> None:
    result = _import_settings(tmp_path, MEDIA_STORAGE="s3", S3_BUCKET="")
    assert "S3_BUCKET must be set when MEDIA_STORAGE=s3" in result.stderr
    result = _import_settings(tmp_path, MEDIA_STORAGE="s3", S3_BUCKET="b", S3_ACCESS_KEY_ID="k")
    assert "set both S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY" in result.stderr
    result = _import_settings(
        tmp_path, MEDIA_STORAGE="s3", S3_BUCKET="b", S3_ENDPOINT_URL="minio:9000"
    )
    assert "S3_ENDPOINT_URL must start with http:// or https://" in result.stderr


def test_up_runs_web_workers_server_processes_and_logs_requests_only_when_asked(
    settings: Any,
) -> None:
    from webapp.management.commands.up import web_command

    settings.WEB_WORKERS, settings.WEB_ACCESS_LOG = 3, False
    command = web_command("127.0.0.1", 8123)
    assert command[command.index("--workers") + 1] == "3"
    assert "--no-access-log" in command
    settings.WEB_ACCESS_LOG = True
    assert "--no-access-log" not in web_command("127.0.0.1", 8123)


def test_web_workers_must_be_a_small_positive_number(tmp_path: Path) -> None:
    result = _import_settings(tmp_path, WEB_WORKERS="0")
    assert "WEB_WORKERS must be at least 1" in result.stderr


def test_the_web_image_runs_the_server_as_up_does() -> None:
    """The container's command is `manage.py serve` (web_command above), not a uvicorn command
    line of its own that could drift from WEB_WORKERS / WEB_ACCESS_LOG."""
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    command = next(line for line in dockerfile.splitlines() if line.startswith("CMD "))
    assert "exec python manage.py serve --host 0.0.0.0 --port 8000" in command
    assert "uvicorn" not in command
