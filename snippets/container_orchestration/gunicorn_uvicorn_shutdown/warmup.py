"""Warming a slow import up: in a thread (the --preload hazard), or at once."""

from __future__ import annotations

import importlib
import threading
from types import ModuleType

__all__ = ["warm_in_background", "warm_now"]


# --8<-- [start:hazard]
def warm_in_background(module: str) -> threading.Thread:
    """Import `module` in a thread, so that start-up does not wait for it.

    Under ``--preload`` the master runs this and then forks. A worker
    forked while the thread is inside the import inherits the module's
    import lock as held, by a thread that does not exist in the worker: the
    worker's first ``import`` of the module waits forever.
    """
    thread = threading.Thread(
        target=importlib.import_module, args=(module,), name=f"warm {module}"
    )
    thread.daemon = True
    thread.start()
    return thread


# --8<-- [end:hazard]


# --8<-- [start:fix]
def warm_now(module: str) -> ModuleType:
    """Import `module` before returning: the master forks only afterwards.

    With ``preload_app = False`` each worker does this after the fork, with
    its own threads and locks.
    """
    return importlib.import_module(module)


# --8<-- [end:fix]
