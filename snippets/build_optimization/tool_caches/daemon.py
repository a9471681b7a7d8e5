"""The mypy daemon (dmypy) for a local edit-check loop, always stopped after.

``dmypy run -- FLAGS FILES`` starts the daemon if none answers, checks, and
keeps the program state in memory: the next ``run`` re-checks only what
changed since the last one (fine-grained incremental mode). The daemon
finds its process through a status file (``.dmypy.json`` by default).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Daemon", "mypy_daemon"]


@dataclass(frozen=True)
class Daemon:
    """A running dmypy, addressed by its status file."""

    project: Path
    status_file: Path

    def command(self, *args: str, timeout: float = 120) -> tuple[int, str]:
        """``dmypy --status-file F ARGS``: exit status and standard output."""
        dmypy = [sys.executable, "-m", "mypy.dmypy"]
        result = subprocess.run(
            [*dmypy, "--status-file", str(self.status_file), *args],
            cwd=self.project,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return result.returncode, (result.stdout + result.stderr).strip()

    def run(self, *files: str, flags: tuple[str, ...] = ()) -> tuple[int, str]:
        """Check ``files``; starts the daemon the first time."""
        return self.command("run", "--timeout", "300", "--", *flags, *files)

    def status(self) -> tuple[int, str]:
        """0 and "Daemon is up and running", or 2 when there is none."""
        return self.command("status", timeout=30)


# --8<-- [start:daemon]
@contextmanager
def mypy_daemon(project: Path, status_file: Path) -> Iterator[Daemon]:
    """A dmypy for ``project``, stopped on the way out whatever happened.

    ``run --timeout 300`` also makes an orphaned daemon exit by itself after
    five idle minutes. ``stop`` asks it to exit; ``kill`` is the fallback.
    """
    daemon = Daemon(project, status_file)
    try:
        yield daemon
    finally:
        try:
            stopped, _ = daemon.command("stop", timeout=30)
        except subprocess.TimeoutExpired:
            stopped = 1
        if stopped != 0 and status_file.exists():
            daemon.command("kill", timeout=30)


# --8<-- [end:daemon]
