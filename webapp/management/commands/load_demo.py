"""``manage.py load_demo``: register the demo pack, import its dashboards, explain its features
and queue its sample graphs.

The pack (``inference/packs/demo``, made by ``make demo-pack``) is a standard HF model folder plus
a standard transcoder folder, so it goes through the same commands and jobs as any model: nothing
here is special-cased for it. Every step is idempotent, so ``manage.py up`` runs it on each start
and a second start only checks. The sample graphs are real attribution jobs, owned by the
``demo`` user, public and featured; the worker that ``up`` starts generates them in seconds.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from features.models import LanguageModel
from graphs.models import Graph
from jobs.models import Job
from jobs.serializers import GenerateSerializer
from jobs.services import create_attribution_jobs

MODEL_SLUG = "demo"
SET_SLUG = "demo-plt"
DEMO_USER = "demo"


def _features_per_layer(transcoders: Path, first: str) -> int:
    """Rows of W_enc in the first transcoder, read from the safetensors header (no torch here)."""
    with open(transcoders / first, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
    return int(header["W_enc"]["shape"][0])


def _relative(path: Path) -> str:
    """Store paths relative to the checkout, so the database survives moving the folder."""
    try:
        return str(path.resolve().relative_to(Path(settings.BASE_DIR)))
    except ValueError:
        return str(path.resolve())


class Command(BaseCommand):
    help = (
        "Register the demo model pack, import its feature dashboards and queue its sample graphs."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--pack",
            type=Path,
            default=Path(settings.BASE_DIR) / "inference" / "packs" / "demo",
            help="the pack folder (model/, transcoders/, features/, prompts.json)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        pack: Path = options["pack"]
        for part in ("model/config.json", "transcoders/config.yaml", "prompts.json"):
            if not (pack / part).is_file():
                raise CommandError(f"--pack: {pack / part} is missing (run `make demo-pack`)")
        quiet = {"verbosity": 0} if options["verbosity"] < 2 else {}
        self._register(pack, quiet)
        call_command(
            "import_features",
            *sorted((pack / "features").glob("layer_*.jsonl.gz")),
            model=MODEL_SLUG,
            set_slug=SET_SLUG,
            **quiet,
        )
        # Named nodes in the newcomer's first graph: every feature explained and scored offline
        # (features already explained are skipped, so a second start only checks).
        call_command("explain_features", model=MODEL_SLUG, set_slug=SET_SLUG, **quiet)
        queued = self._queue_sample_graphs(json.loads((pack / "prompts.json").read_text()))
        self.stdout.write(f"demo pack ready; {queued} sample graph(s) queued")

    def _register(self, pack: Path, quiet: dict[str, int]) -> None:
        config = json.loads((pack / "model" / "config.json").read_text())
        transcoders = yaml.safe_load((pack / "transcoders" / "config.yaml").read_text())
        call_command(
            "register_model",
            MODEL_SLUG,
            display_name="Demo Llama (4 layers, trained here)",
            source=_relative(pack / "model"),
            n_layers=config["num_hidden_layers"],
            d_model=config["hidden_size"],
            vocab_size=config["vocab_size"],
            max_prompt_tokens=config["max_position_embeddings"],
            visibility="public",
            set_slug=SET_SLUG,
            set_display_name="Demo per-layer transcoders",
            kind="plt",
            features_per_layer=_features_per_layer(
                pack / "transcoders", transcoders["transcoders"][0]
            ),
            set_source=_relative(pack / "transcoders"),
            feature_input_hook=transcoders["feature_input_hook"],
            feature_output_hook=transcoders["feature_output_hook"],
            default=True,
            **quiet,
        )

    def _queue_sample_graphs(self, prompts: list[dict[str, str]]) -> int:
        model = LanguageModel.objects.get(slug=MODEL_SLUG)
        owner, _ = get_user_model().objects.get_or_create(
            username=DEMO_USER, defaults={"email": "", "is_active": False}
        )
        queued = 0
        for sample in prompts:
            slug = f"demo-{sample['family'].replace('_', '-')}"
            if Graph.objects.filter(model=model, slug=slug).exists():
                continue
            if Job.objects.filter(model=model, params__slug=slug).active().exists():
                continue
            # The same validation and defaults as a researcher's request through the API.
            form = GenerateSerializer(
                data={
                    "model": MODEL_SLUG,
                    "prompt": sample["prompt"],
                    "slug": slug,
                    "visibility": "public",
                },
                context={"request": SimpleNamespace(user=owner)},
            )
            if not form.is_valid():
                raise CommandError(f"prompts.json: {sample['prompt']!r}: {dict(form.errors)}")
            create_attribution_jobs(
                owner=owner,
                model=model,
                transcoder_set=model.default_transcoder_set,
                prompts=[sample["prompt"]],
                params={
                    **form.job_params(),
                    "title": f"Demo: {sample['family'].replace('_', ' ')}",
                    "featured": True,
                },
            )
            queued += 1
        return queued
