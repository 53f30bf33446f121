"""``manage.py import_explanations --model SLUG [--set SLUG] FILE.jsonl[.gz]``

One explanation per line: ``{"layer": 3, "index": 17, "text": "...", "method"?: "...",
"score"?: 0.8}`` (or ``"feature"``: the Cantor-paired id instead of layer/index). Lines for
unknown features and exact repeats are skipped, so a rerun is harmless.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from features.importers.explanations import ExplanationProgress, import_explanations
from features.importers.fields import FeatureFormatError
from features.management.commands._common import transcoder_set


class Command(BaseCommand):
    help = "Import feature explanations from JSON lines."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path)
        parser.add_argument("--model", required=True)
        parser.add_argument("--set", dest="set_slug", default=None)
        parser.add_argument("--method", default="imported", help="For lines without one.")

    def handle(self, *args: Any, **opts: Any) -> None:
        ts = transcoder_set(opts["model"], opts["set_slug"])
        if not opts["path"].exists():
            raise CommandError(f"{opts['path']}: no such file")

        def report(progress: ExplanationProgress) -> None:
            self.stdout.write(f"{progress.read:,} read, {progress.created:,} added")

        try:
            progress = import_explanations(
                ts, opts["path"], method=opts["method"], on_progress=report
            )
        except FeatureFormatError as exc:
            raise CommandError(str(exc)) from None
        skipped = progress.read - progress.created
        self.stdout.write(
            self.style.SUCCESS(
                f"{ts}: {progress.created:,} explanations added, {skipped:,} skipped "
                "(unknown feature or already there)"
            )
        )
