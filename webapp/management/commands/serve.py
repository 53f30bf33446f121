"""``manage.py serve``: the web server alone, as a container runs it (docker/Dockerfile).

It becomes the ASGI server ``manage.py up`` starts (``web_command``: ``WEB_WORKERS`` processes,
the access log only with ``WEB_ACCESS_LOG``), so the image and a local run cannot disagree. The
process is replaced rather than wrapped: the server is then the container's main process and gets
its stop signal directly.
"""

from __future__ import annotations

import os

from django.core.management.base import BaseCommand, CommandParser

from webapp.management.commands.up import web_command


class Command(BaseCommand):
    help = "Run the web server (uvicorn) in this process, as manage.py up runs it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)

    def handle(self, *args: object, **options: object) -> None:
        command = web_command(str(options["host"]), int(str(options["port"])))
        self.stdout.flush()
        os.execv(command[0], command)
