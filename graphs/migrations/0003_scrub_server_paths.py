"""Graphs stored before ``store_graph`` cleaned metadata hold the worker's model folder in
``metadata.info.model`` (and files from other tools may hold paths of their own): rewrite
those artifacts without any server path (graphs/server_paths.py)."""

from typing import Any

from django.db import migrations


def scrub(apps: Any, schema_editor: Any) -> None:
    from graphs.server_paths import rewrite_stored

    rewrite_stored(apps.get_model("graphs", "Graph"))


class Migration(migrations.Migration):
    dependencies = [
        ("graphs", "0002_subgraph_test_rows"),
    ]

    # Atomic (the default on Postgres): the rows move to the new files together, and the old
    # files go only after the commit. Backwards is a no-op: the paths are not worth restoring.
    operations = [migrations.RunPython(scrub, migrations.RunPython.noop)]
