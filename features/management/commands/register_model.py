"""``manage.py register_model SLUG --n-layers N --d-model D --vocab-size V [...]``

Creates or updates a language model, and with ``--set`` one of its transcoder sets (made the
model's default unless another default exists, or always with ``--default``; ``--owner`` names
the user who may compute its dashboards). Idempotent, so a
demo loader can call it on every start.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from core.visibility import Visibility
from features.models import LanguageModel, TranscoderSet


class Command(BaseCommand):
    help = "Create or update a language model (and optionally a transcoder set)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--display-name", default="")
        parser.add_argument("--source", default="", help="Hugging Face id or local path.")
        parser.add_argument("--n-layers", type=int)
        parser.add_argument("--d-model", type=int)
        parser.add_argument("--vocab-size", type=int)
        parser.add_argument("--max-prompt-tokens", type=int)
        parser.add_argument("--tokenizer", default=None, help="JSON object of tokenizer facts.")
        parser.add_argument("--visibility", choices=Visibility.values, default=None)
        parser.add_argument("--set", dest="set_slug", help="Also register this transcoder set.")
        parser.add_argument("--set-display-name", default="")
        parser.add_argument("--kind", choices=TranscoderSet.Kind.values, default="plt")
        parser.add_argument("--features-per-layer", type=int)
        parser.add_argument("--set-source", default="", help="Local path or hf:// URI.")
        parser.add_argument("--feature-input-hook", default="")
        parser.add_argument("--feature-output-hook", default="")
        parser.add_argument("--default", action="store_true", help="Make --set the default.")
        parser.add_argument(
            "--owner",
            default=None,
            help="Username who may compute --set's dashboards (besides staff); '' for none.",
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        fields: dict[str, Any] = {
            key: opts[name]
            for key, name in (
                ("n_layers", "n_layers"),
                ("d_model", "d_model"),
                ("vocab_size", "vocab_size"),
                ("max_prompt_tokens", "max_prompt_tokens"),
                ("visibility", "visibility"),
            )
            if opts[name] is not None
        }
        if opts["display_name"]:
            fields["display_name"] = opts["display_name"]
        if opts["source"]:
            fields["source"] = opts["source"]
        if opts["tokenizer"] is not None:
            try:
                tokenizer = json.loads(opts["tokenizer"])
            except ValueError as exc:
                raise CommandError(f"--tokenizer is not JSON: {exc}") from None
            if not isinstance(tokenizer, dict):
                raise CommandError("--tokenizer must be a JSON object")
            fields["tokenizer"] = tokenizer
        for key, value in fields.items():
            if isinstance(value, int) and value < 0:
                raise CommandError(f"--{key.replace('_', '-')} must not be negative")
        with transaction.atomic():
            model = LanguageModel.objects.filter(slug=opts["slug"]).first()
            if model is None:
                missing = [k for k in ("n_layers", "d_model", "vocab_size") if k not in fields]
                if missing:
                    names = ", ".join("--" + m.replace("_", "-") for m in missing)
                    raise CommandError(f"a new model needs {names}")
                fields.setdefault("display_name", opts["slug"])
                model = LanguageModel.objects.create(slug=opts["slug"], **fields)
                self.stdout.write(f"created model {model.slug}")
            elif fields:
                for key, value in fields.items():
                    setattr(model, key, value)
                model.save(update_fields=list(fields))
                self.stdout.write(f"updated model {model.slug}")
            if opts["set_slug"]:
                self._register_set(model, opts)

    def _owner(self, username: str) -> Any:
        if not username:
            return None
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"--owner: no user {username!r}")
        return user

    def _register_set(self, model: LanguageModel, opts: dict[str, Any]) -> None:
        fields: dict[str, Any] = {"kind": opts["kind"]}
        for key in ("feature_input_hook", "feature_output_hook"):
            if opts[key]:
                fields[key] = opts[key]
        if opts["set_display_name"]:
            fields["display_name"] = opts["set_display_name"]
        if opts["set_source"]:
            fields["source"] = opts["set_source"]
        if opts["features_per_layer"] is not None:
            fields["features_per_layer"] = opts["features_per_layer"]
        if opts["owner"] is not None:
            fields["owner"] = self._owner(opts["owner"])
        ts = model.transcoder_sets.filter(slug=opts["set_slug"]).first()
        if ts is None:
            if "features_per_layer" not in fields:
                raise CommandError("a new transcoder set needs --features-per-layer")
            ts = TranscoderSet.objects.create(model=model, slug=opts["set_slug"], **fields)
            self.stdout.write(f"created transcoder set {ts}")
        else:
            for key, value in fields.items():
                setattr(ts, key, value)
            ts.save(update_fields=list(fields))
            self.stdout.write(f"updated transcoder set {ts}")
        if opts["default"] or model.default_transcoder_set_id is None:
            model.default_transcoder_set = ts
            model.save(update_fields=["default_transcoder_set"])
