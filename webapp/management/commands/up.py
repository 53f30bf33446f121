"""``manage.py up``: everything a local user needs, in one terminal, until Ctrl-C.

Order: (manage.py has already started the embedded Postgres/Redis when their URLs are unset)
migrations, static files, then the ASGI server and one Celery worker as child processes whose
output is prefixed and merged here. The URL is printed once the site answers. SIGINT/SIGTERM stop
the children (each in its own process group, so a Celery pool goes too), then manage.py stops the
embedded servers it owns.

A worker that dies (a crash, an out-of-memory kill) is restarted after a growing pause, with a
line saying so, while the site stays up; the job it held is re-queued by the job reaper once its
heartbeat goes stale (docs/jobs.md). The web server dying stops everything: without it there is
no site to keep up.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import IO, Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

_READY_TIMEOUT_S = 90.0
_STOP_TIMEOUT_S = 15.0
# Pauses before restarting a dead worker: the n-th restart in a row waits the n-th (then the last).
_RESTART_BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)
# A worker that ran this long before dying starts the backoff over.
_RESTART_RESET_AFTER_S = 60.0

# Run in each child before its real command (which it execs): ask Linux to SIGTERM the child
# when `up` dies, even by SIGKILL. Children run in their own sessions, so without this a killed
# `up` would leave the web server holding the port and block the next start. A launcher rather
# than preexec_fn, which is unsafe once `up` has threads (it restarts workers after its output
# threads started). The parent check covers `up` dying before the prctl call.
_LAUNCHER = """
import ctypes, os, signal, sys
ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
if os.getppid() != int(sys.argv[1]):
    sys.exit(1)
os.execv(sys.argv[2], sys.argv[2:])
"""


def web_command(host: str, port: int) -> list[str]:
    """The ASGI server as `up` runs it (benchmarks/load.py runs the same)."""
    return [
        sys.executable, "-m", "uvicorn", "webapp.asgi:application",
        "--host", host, "--port", str(port),
        # Channels' router does not speak the lifespan protocol.
        "--lifespan", "off",
        # Each request runs on a thread of its own (webapp/http_handler.py), but Python runs
        # one thread of a process at a time: more processes use more cores.
        "--workers", str(settings.WEB_WORKERS),
        # A line per request costs the server (and `up`, which copies it) more than a
        # lookup's own work; errors are still logged.
        *([] if settings.WEB_ACCESS_LOG else ["--no-access-log"]),
    ]  # fmt: skip


@dataclass
class Child:
    name: str
    command: list[str]
    restartable: bool = False
    process: subprocess.Popen[bytes] | None = None
    pump: threading.Thread | None = field(default=None, repr=False)
    started_at: float = 0.0
    restarts_in_a_row: int = 0
    restart_due: float | None = None

    def spawn(self) -> None:
        command = self.command
        if sys.platform.startswith("linux"):
            command = [sys.executable, "-c", _LAUNCHER, str(os.getpid()), *command]
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # Own process group: Ctrl-C reaches only us, and we stop each child with its own
            # workers (Celery's pool processes) in one signal.
            start_new_session=True,
        )
        self.started_at = time.monotonic()

    def schedule_restart(self) -> float:
        """Plan the next start after a death; return the pause."""
        if time.monotonic() - self.started_at >= _RESTART_RESET_AFTER_S:
            self.restarts_in_a_row = 0
        pause = _RESTART_BACKOFF_S[min(self.restarts_in_a_row, len(_RESTART_BACKOFF_S) - 1)]
        self.restarts_in_a_row += 1
        self.restart_due = time.monotonic() + pause
        return pause

    def copy_output_to(self, out: IO[str], lock: threading.Lock, width: int) -> None:
        self.pump = threading.Thread(target=self._copy_output, args=(out, lock, width), daemon=True)
        self.pump.start()

    def _copy_output(self, out: IO[str], lock: threading.Lock, width: int) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        prefix = f"{self.name:<{width}} | "
        for raw in self.process.stdout:
            line = raw.decode(errors="replace").rstrip()
            with lock:
                out.write(prefix + line + "\n")
                out.flush()

    def exited(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def signal_group(self, signum: int) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)

    def wait(self, timeout: float) -> bool:
        if self.process is None:
            return True
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True


def _ensure_port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise CommandError(
                f"port {port} on {host} is already in use ({exc.strerror}): "
                "stop what is using it or pass --port N"
            ) from None


def _worker_queues() -> list[str]:
    """The local worker serves every model: its GPU queue (jobs), plus the shared queues.

    Models registered while ``up`` runs are picked up by the worker itself
    (JOBS_WORKER_SERVE_ALL_MODELS, set below; see jobs/worker.py).
    """
    from features.models import LanguageModel
    from jobs.dispatch import queue_for

    os.environ["JOBS_WORKER_SERVE_ALL_MODELS"] = "1"
    return ["default", "gpu", *(queue_for(model) for model in LanguageModel.objects.only("slug"))]


def _site_answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # 503 from /healthz still means the site answers
    except OSError:
        return False


class Command(BaseCommand):
    help = "Run Circuit Atlas locally: database, Redis, migrations, web server and a worker."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=settings.SERVER_HOST, help="address to serve on")
        parser.add_argument(
            "--port", type=int, default=settings.SERVER_PORT, help="port to serve on"
        )
        parser.add_argument(
            "--no-demo",
            dest="demo",
            action="store_false",
            help="skip registering the demo pack and queueing its sample graphs",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        host: str = options["host"]
        port: int = options["port"]
        if not 1 <= port <= 65535:
            raise CommandError(f"--port must be between 1 and 65535, got {port}")
        _ensure_port_free(host, port)

        self.stdout.write("Applying migrations…")
        call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        if options["demo"]:
            self.stdout.write("Loading the demo pack…")
            try:
                call_command("load_demo")
            except CommandError as exc:
                # The site is still useful without it (uploads, other models): say so, go on.
                self.stderr.write(f"demo pack not loaded: {exc}")

        # `up` is the demo people open from other machines and share links from: Django's debug
        # pages (settings, every URL pattern) are not for them, and a shared link that is a 404
        # must read as the site's own page. DEBUG=1 in the environment still turns them on.
        os.environ.setdefault("DEBUG", "false")
        children = self._children(host, port)
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())

        lock = threading.Lock()
        self.width = max(len(child.name) for child in children)
        for child in children:
            child.spawn()
            child.copy_output_to(sys.stdout, lock, self.width)

        try:
            failed = self._supervise(children, stop, f"http://{self._url_host(host)}:{port}", lock)
        finally:
            self._stop(children, lock)
        if failed:
            raise CommandError(failed)

    @staticmethod
    def _url_host(host: str) -> str:
        if host in {"0.0.0.0", "::", ""}:
            return "127.0.0.1"
        return f"[{host}]" if ":" in host else host

    @staticmethod
    def _children(host: str, port: int) -> list[Child]:
        python = sys.executable
        return [
            Child("web", web_command(host, port)),
            Child(
                "worker",
                [
                    python, "-m", "celery", "-A", "webapp", "worker",
                    "--queues", ",".join(_worker_queues()), "--concurrency", "1",
                    "--hostname", f"local@{socket.gethostname()}",
                    "--loglevel", "INFO", "--without-gossip", "--without-mingle",
                ],
                restartable=True,
            ),
        ]  # fmt: skip

    def _supervise(
        self, children: list[Child], stop: threading.Event, base_url: str, lock: threading.Lock
    ) -> str | None:
        """Wait until stopped; return an error message if a child died on its own."""
        announced = False
        deadline = time.monotonic() + _READY_TIMEOUT_S
        while not stop.is_set():
            for child in children:
                code = child.exited()
                if code is None:
                    continue
                if not child.restartable:
                    return f"{child.name} exited with status {code}; stopping"
                self._restart(child, code, lock)
            if not announced:
                if _site_answers(f"{base_url}/healthz"):
                    announced = True
                    with lock:
                        self.stdout.write(f"Circuit Atlas is up at {base_url}/  (Ctrl-C to stop)")
                elif time.monotonic() > deadline:
                    return f"the site did not answer at {base_url} within {_READY_TIMEOUT_S:g}s"
            stop.wait(0.25)
        return None

    def _restart(self, child: Child, code: int, lock: threading.Lock) -> None:
        """Called while ``child`` is dead: plan its restart once, then start it when due."""
        if child.restart_due is None:
            # Its pool processes may have outlived it (kill -9 of the main process): they would
            # hold on to the job, so they go first.
            child.signal_group(signal.SIGKILL)
            pause = child.schedule_restart()
            with lock:
                self.stderr.write(
                    f"{child.name} exited with status {code}; restarting it in {pause:g} s "
                    f"(restart {child.restarts_in_a_row} in a row)"
                )
        elif time.monotonic() >= child.restart_due:
            child.restart_due = None
            child.spawn()
            child.copy_output_to(sys.stdout, lock, self.width)
            with lock:
                self.stdout.write(f"{child.name} restarted")

    def _stop(self, children: list[Child], lock: threading.Lock) -> None:
        with lock:
            self.stdout.write("Stopping…")
        for child in children:
            child.signal_group(signal.SIGTERM)
        deadline = time.monotonic() + _STOP_TIMEOUT_S
        for child in children:
            if not child.wait(max(0.0, deadline - time.monotonic())):
                child.signal_group(signal.SIGKILL)
                child.wait(5)
            # Pool processes may outlive their parent by a moment; take the whole group down.
            child.signal_group(signal.SIGKILL)
        for child in children:
            if child.pump is not None:
                child.pump.join(timeout=2)
