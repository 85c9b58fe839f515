"""``python -m batch`` (from the pack folder) / ``python scripts/hv_batch.py``: run a job list."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
