from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.realtime import ANNOUNCEMENTS, broadcast

_MAX_CHARS = 500


class Command(BaseCommand):
    help = "Show a notice to everyone with the site open (e.g. before maintenance)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("text", help=f"the notice, plain text, at most {_MAX_CHARS} characters")
        parser.add_argument("--level", choices=["info", "warning"], default="info")

    def handle(self, *args: Any, **options: Any) -> None:
        text = options["text"].strip()
        if not text:
            raise CommandError("text: the notice is empty")
        if len(text) > _MAX_CHARS:
            raise CommandError(f"text: {len(text)} characters, at most {_MAX_CHARS} allowed")
        broadcast(ANNOUNCEMENTS, {"type": "announcement", "level": options["level"], "text": text})
        self.stdout.write("announced")
