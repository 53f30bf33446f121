"""``manage.py export_graph MODEL SLUG [-o FILE] [--subgraph SHARE_SLUG]``

Writes the graph JSON (circuit-tracer schema), with a subgraph's pins, supernodes and labels
merged into ``qParams``/``clerp`` when ``--subgraph`` is given. ``-o -`` (default) is stdout.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from graphs import artifacts
from graphs.models import Graph


class Command(BaseCommand):
    help = "Export a graph as circuit-tracer / Neuronpedia JSON."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("model")
        parser.add_argument("slug")
        parser.add_argument("-o", "--output", default="-")
        parser.add_argument("--subgraph", default=None, help="Share slug of a subgraph.")

    def handle(self, *args: Any, **opts: Any) -> None:
        graph = Graph.objects.filter(model__slug=opts["model"], slug=opts["slug"]).first()
        if graph is None:
            raise CommandError(f"no graph {opts['model']}/{opts['slug']}")
        document = artifacts.read_document(graph.artifact_name)
        if opts["subgraph"]:
            sub = graph.subgraphs.filter(share_slug=opts["subgraph"]).first()
            if sub is None:
                raise CommandError(f"graph {graph} has no subgraph {opts['subgraph']!r}")
            document = artifacts.with_annotations(
                document,
                pinned_ids=sub.pinned_ids,
                supernodes=sub.supernodes,
                node_labels=sub.node_labels,
                clicked_id=sub.clicked_id,
            )
        body = artifacts.encode(document)
        if opts["output"] == "-":
            sys.stdout.buffer.write(body + b"\n")
        else:
            Path(opts["output"]).write_bytes(body)
            self.stderr.write(f"wrote {len(body):,} bytes to {opts['output']}")
