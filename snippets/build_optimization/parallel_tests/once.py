"""A session-scoped setup that runs once per test run, not once per worker.

Each pytest-xdist worker is its own pytest session, so a
``scope="session"`` fixture runs once in every worker. When the setup is
expensive or must not happen twice (create a database, start a server,
download a data set), the first worker does it under a file lock and writes
down what the others need; the others wait for the lock and read it.
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["once_per_run"]


# --8<-- [start:once]
def once_per_run(shared: Path, name: str, create: Callable[[], Any]) -> Any:
    """Run ``create`` once per test run, however many workers ask for it.

    Args:
        shared: A directory that every worker of this run sees and no other
            run does: ``tmp_path_factory.getbasetemp().parent`` in a worker.
        name: The file name the result is kept under (``<name>.json``).
        create: Makes the resource and returns what the workers need to use
            it (a URL, a name, a path), as JSON-serialisable data.

    Returns:
        What ``create`` returned, in this worker or in the one that ran it.
    """
    result = shared / f"{name}.json"
    with (shared / f"{name}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the others wait here; released on close
        if result.is_file():
            return json.loads(result.read_text())
        value = create()  # raises: no result is written, the next worker retries
        partial = result.with_suffix(".partial")
        partial.write_text(json.dumps(value))
        partial.replace(result)  # whole or absent, never half written
        return value


# --8<-- [end:once]
