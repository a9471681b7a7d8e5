"""The WSGI app of the preload demo: ``GET /report`` needs the slow module.

``$WARMUP`` says what the module does when it is imported: ``thread`` starts
importing the slow module in a thread (`warm_in_background`) and waits only
until that import has begun; ``now`` imports it at once (`warm_now`).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterable
from typing import Any

from snippets.container_orchestration.gunicorn_uvicorn_shutdown import (
    warm_in_background,
    warm_now,
)
from snippets.support.container_orchestration_started import STARTED

__all__ = ["SLOW_MODULE", "app"]

SLOW_MODULE = "snippets.support.container_orchestration_warm"

if os.environ.get("WARMUP") == "thread":
    warm_in_background(SLOW_MODULE)
    if not STARTED.wait(timeout=10):
        raise RuntimeError("the slow import did not start")
else:
    warm_now(SLOW_MODULE)


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    model = importlib.import_module(SLOW_MODULE)  # done, or waits for the import
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"report with {model.MODEL}".encode()]
