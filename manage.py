#!/usr/bin/env python
"""Django's command-line utility, plus the local conveniences of Circuit Atlas.

When DATABASE_URL / REDIS_URL are unset (local use), the embedded Postgres and Redis under var/
are started if needed before Django reads its settings, so every command just works; a server
this command started is stopped when it exits (see webapp/embedded.py).
"""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    from webapp import embedded

    local = os.environ.get("ATLAS_ENV", "local").strip().lower() != "production"
    try:
        with embedded.services(
            embedded.var_dir(),
            postgres=local and not os.environ.get("DATABASE_URL"),
            redis=local and not os.environ.get("REDIS_URL"),
        ) as urls:
            os.environ.update(urls)
            from django.conf import settings

            settings.INSTALLED_APPS  # noqa: B018 - read settings now, to report errors in one line
            execute_from_command_line(sys.argv)
    except (ImproperlyConfigured, embedded.EmbeddedServiceError) as exc:
        sys.stderr.write(f"{type(exc).__name__}: {exc}\n")
        sys.exit(2)


if __name__ == "__main__":
    main()
