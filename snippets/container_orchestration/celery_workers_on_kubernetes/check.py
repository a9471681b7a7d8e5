"""The exec liveness probe: is the worker's liveness file fresh?

Standard library only, so that the probe starts fast and does not import
Celery or reach the broker. Copy the file into the image and run it as a
script::

    python /app/celery_alive.py /tmp/celery-alive 30

Exit status 0 means alive; anything else counts as a failed probe.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["file_is_fresh", "main"]


# --8<-- [start:check]
def file_is_fresh(path: Path, max_age: float) -> bool:
    """Whether ``path`` was modified less than ``max_age`` seconds ago."""
    try:
        modified = path.stat().st_mtime
    except FileNotFoundError:  # not started yet, or another container's file
        return False
    return time.time() - modified < max_age


def main(argv: Sequence[str] | None = None) -> int:
    """The exec probe: ``python check.py PATH MAX_AGE``; exit status 0 means alive."""
    args = list(sys.argv[1:] if argv is None else argv)
    path, max_age = Path(args[0]), float(args[1])
    if file_is_fresh(path, max_age):
        return 0
    print(f"{path} not touched for {max_age:g} s", file=sys.stderr)
    return 1


# --8<-- [end:check]


if __name__ == "__main__":
    sys.exit(main())
