"""``manage.py import_graph PATH [--model SLUG] [--set SLUG] [--slug SLUG] [--owner USER]
[--visibility public|unlisted|private] [--replace]``

Imports a circuit-tracer / Neuronpedia graph JSON (optionally gzipped) with the same validation
as uploads. The model defaults to the file's ``metadata.scan``. ``--replace`` deletes an existing
graph with the same slug first (after the new file has validated), so a demo loader can rerun.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from contract.graph_json import GraphValidationError
from core.visibility import Visibility
from graphs import services
from graphs.models import Graph


class Command(BaseCommand):
    help = "Import an attribution graph JSON file."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path)
        parser.add_argument("--model", default=None, help="Default: the file's metadata.scan.")
        parser.add_argument("--set", dest="set_slug", default=None)
        parser.add_argument("--slug", default=None, help="Default: metadata.slug or the prompt.")
        parser.add_argument("--title", default="")
        parser.add_argument("--owner", default=None, help="Username (default: no owner).")
        parser.add_argument("--visibility", choices=Visibility.values, default=Visibility.PUBLIC)
        parser.add_argument("--featured", action="store_true")
        parser.add_argument("--replace", action="store_true")

    def handle(self, *args: Any, **opts: Any) -> None:
        path: Path = opts["path"]
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        owner = None
        if opts["owner"]:
            owner = User.objects.filter(username=opts["owner"]).first()
            if owner is None:
                raise CommandError(f"no user {opts['owner']!r}")
        data = path.read_bytes()
        try:
            with transaction.atomic():
                if opts["replace"] and opts["slug"]:
                    old_graphs = Graph.objects.filter(slug=opts["slug"])
                    if opts["model"]:
                        old_graphs = old_graphs.filter(model__slug=opts["model"])
                    old = old_graphs.first()
                    if old is not None:
                        services.delete_graph(old)
                graph = services.import_graph_bytes(
                    data,
                    model_slug=opts["model"],
                    transcoder_set_slug=opts["set_slug"],
                    slug=opts["slug"],
                    owner=owner,
                    visibility=opts["visibility"],
                    source=Graph.Source.IMPORTED,
                    title=opts["title"],
                )
                if opts["featured"]:
                    graph.featured = True
                    graph.save(update_fields=["featured"])
        except GraphValidationError as exc:
            lines = "\n".join(f"  {field}: {message}" for field, message in exc.errors.items())
            raise CommandError(f"{path} is not a valid graph:\n{lines}") from None
        self.stdout.write(
            self.style.SUCCESS(
                f"imported {graph} ({graph.n_nodes:,} nodes, {graph.n_links:,} links, "
                f"{graph.n_features:,} features)"
            )
        )
