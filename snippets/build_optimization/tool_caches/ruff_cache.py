"""Run ``ruff check`` with or without its cache and count the files it linted.

``ruff check -v`` logs ``Checking: <path>`` for each file it lints; a file
whose cached result it reuses gets no such line (ruff's
``crates/ruff/src/diagnostics.rs`` logs it after the cache lookup).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["RuffRun", "run_ruff"]

CHECKING = re.compile(r"Checking: (\S+)")


@dataclass(frozen=True)
class RuffRun:
    """One ``ruff check`` run: its exit status and the files it linted."""

    exit_code: int
    linted: tuple[str, ...]  # paths relative to the project, sorted


# --8<-- [start:run]
def run_ruff(
    project: Path,
    cache_dir: Path | None,
    *args: str,
    paths: Sequence[str] = (".",),
    env: Mapping[str, str] | None = None,
    timeout: float = 60,
) -> RuffRun:
    """``ruff check -v ARGS PATHS`` in ``project``; ``cache_dir=None``: ``--no-cache``.

    Without ``--cache-dir`` ruff uses ``RUFF_CACHE_DIR`` from the
    environment, then ``.ruff_cache`` in the project.
    """
    cache = ["--no-cache"] if cache_dir is None else ["--cache-dir", str(cache_dir)]
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "-v", *cache, *args, *paths],
        cwd=project,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode not in (0, 1):  # 2: ruff itself failed
        raise RuntimeError(f"ruff failed ({result.returncode}): {result.stderr}")
    root = project.resolve()
    paths_linted = CHECKING.findall(result.stderr)
    linted = {Path(p).relative_to(root).as_posix() for p in paths_linted}
    return RuffRun(result.returncode, tuple(sorted(linted)))


# --8<-- [end:run]
