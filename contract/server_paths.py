"""What counts as a server path, and the name that may be shown in its place.

A path of the machine that stored something (``/srv/models/gemma-2-2b``, ``C:\\models\\x``,
``file:///...``) tells other people the server's layout; its last component keeps the name
readable without it. URLs (``https://``, ``hf://``) and relative names such as a Hugging Face id
(``google/gemma-2-2b``) are not server paths. Graph metadata (``graphs.server_paths``) and the
models API (``features.serializers``) both show names through this one rule.
"""

from __future__ import annotations

import re

# Absolute POSIX or Windows paths, a home-relative path, a UNC share, or a file: URL.
_PATH = re.compile(r"^(?:file:|~[/\\]|/|[A-Za-z]:[/\\]|\\\\)")


def is_server_path(value: str) -> bool:
    return bool(_PATH.match(value.strip()))


def last_component(path: str) -> str:
    parts = [p for p in re.split(r"[/\\]+", path.strip()) if p and p != "file:"]
    return parts[-1] if parts else ""


def public_name(value: str) -> str:
    """``value`` itself, or its last component when it is a server path."""
    return last_component(value) if is_server_path(value) else value
