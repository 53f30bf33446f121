"""``manage.py import_features --model SLUG [--set SLUG] PATH [PATH ...]``

Feature dashboards (circuit-tracer feature JSON) from files, folders, ``.json.gz``, ``.tar.gz``
or JSON lines (``layer_{i}.jsonl.gz``). Resumable: rerunning skips finished files and features
already present (``--replace`` overwrites them). Prints progress as it goes.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from features.importers.fields import FeatureFormatError
from features.importers.writer import Progress, import_features
from features.management.commands._common import transcoder_set


class Command(BaseCommand):
    help = "Import feature dashboards (circuit-tracer feature JSON) into a transcoder set."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("paths", nargs="+", type=Path)
        parser.add_argument("--model", required=True)
        parser.add_argument("--set", dest="set_slug", default=None, help="Default: the model's.")
        parser.add_argument("--layer", type=int, default=None, help="Layer of every feature read.")
        parser.add_argument("--replace", action="store_true", help="Overwrite existing features.")
        parser.add_argument("--batch-size", type=int, default=2000)
        parser.add_argument("--max-examples", type=int, default=20, help="Per feature.")

    def handle(self, *args: Any, **opts: Any) -> None:
        ts = transcoder_set(opts["model"], opts["set_slug"])
        last = [0.0]

        def report(progress: Progress, where: str) -> None:
            now = time.monotonic()
            if now - last[0] >= 2 or where.endswith(("done", "skipped")):
                last[0] = now
                self.stdout.write(f"{where}: {progress.line()}")

        try:
            progress = import_features(
                ts,
                opts["paths"],
                layer=opts["layer"],
                replace=opts["replace"],
                batch_size=max(1, opts["batch_size"]),
                max_examples=max(0, opts["max_examples"]),
                on_progress=report,
            )
        except FeatureFormatError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            self.style.SUCCESS(
                f"{ts}: {progress.files} files imported, {progress.files_skipped} skipped; "
                f"{progress.line()}"
            )
        )
