"""``{% vite_entry "src/main.ts" %}``: script and style tags for a Vite entry, from its manifest.

Vite writes hashed file names (cached forever by whitenoise) and a manifest mapping each entry to
them; this tag reads that manifest so templates name sources, not build outputs.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from django import template
from django.conf import settings
from django.templatetags.static import static
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

register = template.Library()

MANIFEST = Path(settings.BASE_DIR) / "static" / "dist" / ".vite" / "manifest.json"


@lru_cache(maxsize=4)
def _manifest(mtime_ns: int) -> dict[str, Any]:
    # Keyed by mtime so a rebuild is picked up without a restart.
    data: dict[str, Any] = json.loads(MANIFEST.read_text())
    return data


class FrontendNotBuilt(RuntimeError):
    pass


@register.simple_tag
def vite_entry(name: str) -> SafeString:
    try:
        manifest = _manifest(MANIFEST.stat().st_mtime_ns)
    except FileNotFoundError:
        raise FrontendNotBuilt(
            f"{MANIFEST} is missing: build the frontend with `make frontend`"
        ) from None
    chunk = manifest[name]
    styles = format_html_join(
        "",
        '<link rel="stylesheet" href="{}">',
        ((static(f"dist/{css}"),) for css in chunk.get("css", [])),
    )
    script = format_html(
        '<script type="module" src="{}"></script>', static(f"dist/{chunk['file']}")
    )
    return format_html("{}{}", styles, script)
