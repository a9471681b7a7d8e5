"""One event: the preload demo's slow import has started (see `..._warm`)."""

from __future__ import annotations

import threading

__all__ = ["STARTED"]

STARTED = threading.Event()
