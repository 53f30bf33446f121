"""`python -m inference attribute ...` (see inference/cli.py)."""

import sys

from inference.cli import main

sys.exit(main())
