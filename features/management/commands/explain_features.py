"""``manage.py explain_features --model SLUG [--set SLUG] [--layer N] [--method M] [--replace]``

Explain and score every feature of a transcoder set (or one layer of it) with the offline
token-pattern method or the configured LLM (EXPLAINER_* settings). Features that already have
an explanation of that method and model are skipped unless ``--replace``, so a rerun after an
interruption continues where it stopped. docs/explanations.md describes the methods and scores.
"""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from autointerp import pipeline
from autointerp.llm import LLMError
from features.explaining import NoExplainer, configured_llm, explain_features
from features.management.commands._common import transcoder_set
from features.models import Feature


class Command(BaseCommand):
    help = "Explain and score a transcoder set's features (token patterns or an LLM)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--model", required=True)
        parser.add_argument("--set", dest="set_slug", default=None)
        parser.add_argument("--layer", type=int, default=None, help="Only this layer.")
        parser.add_argument("--method", choices=pipeline.METHODS, default=pipeline.TOKEN_PATTERN)
        parser.add_argument(
            "--replace", action="store_true", help="Redo features already explained this way."
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        ts = transcoder_set(opts["model"], opts["set_slug"])
        features = Feature.objects.for_set(ts)
        if opts["layer"] is not None:
            if opts["layer"] < 0:
                raise CommandError("--layer: expected a non-negative integer")
            features = features.filter(layer=opts["layer"])
        try:
            llm = configured_llm() if opts["method"] == pipeline.LLM else None
        except NoExplainer as exc:
            raise CommandError(f"--method llm: {exc}") from None
        started = time.perf_counter()

        def report(done: int, total: int) -> None:
            if opts["verbosity"] >= 2:
                self.stdout.write(f"{done:,} of {total:,} features")

        try:
            outcome = explain_features(
                features.values_list("id", flat=True),
                method=opts["method"],
                llm=llm,
                replace=opts["replace"],
                on_progress=report,
            )
        except LLMError as exc:
            raise CommandError(f"{exc} (finished explanations are kept; rerun to go on)") from None
        seconds = time.perf_counter() - started
        self.stdout.write(
            self.style.SUCCESS(f"{ts}: {outcome.summary()} in {seconds:.1f} s ({opts['method']})")
        )
