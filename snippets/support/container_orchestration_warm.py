"""The preload demo's slow module: it loads "a model" from the dependency.

Its body sets `STARTED` (in `container_orchestration_started`, a module of
its own, so that setting it takes no lock of the app's module) and then waits
for the dependency: the app knows the import is under way before it returns
to gunicorn, which then forks.
"""

from __future__ import annotations

import os

from snippets.container_orchestration.graceful_shutdown import call_dependency
from snippets.support.container_orchestration_started import STARTED

__all__ = ["MODEL"]

STARTED.set()
_host, _port = os.environ["DEPENDENCY"].rsplit(":", 1)
MODEL = call_dependency((_host, int(_port)), "model", timeout=60).strip()
