"""Run mypy against a cache directory and count what it re-checked.

mypy's incremental mode keeps one entry per module in ``--cache-dir``
(``.mypy_cache`` by default). ``mypy -v`` logs, for every group of modules
it has to check again, a line ``Scheduling SCC singleton (app.m05) as
inherently stale`` (or ``Scheduling SCC of size N (...)``), and for every
cache entry it throws away, ``Metadata abandoned for app.m05: <reason>``.
Modules with no such line came from the cache.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MypyRun", "abandoned", "rechecked", "run_mypy"]

SCHEDULED = re.compile(r"Scheduling SCC (?:singleton|of size \d+) \(([^)]*)\) as ")
ABANDONED = re.compile(r"Metadata abandoned for (\S+): (.*)")


@dataclass(frozen=True)
class MypyRun:
    """One mypy run: its exit status, report, and what it checked again."""

    exit_code: int
    report: str  # mypy's standard output: errors and the summary line
    rechecked: tuple[str, ...]  # project modules type-checked again, sorted
    abandoned: Mapping[str, int]  # reason -> project cache entries thrown away
    log: str  # what -v wrote to standard error


# --8<-- [start:count]
def rechecked(log: str, package: str) -> tuple[str, ...]:
    """The modules of ``package`` that ``mypy -v`` scheduled as stale."""
    found = set()
    for match in SCHEDULED.finditer(log):
        for module in match[1].split():
            if module == package or module.startswith(package + "."):
                found.add(module)
    return tuple(sorted(found))


def abandoned(log: str, package: str) -> dict[str, int]:
    """How many cache entries of ``package`` mypy discarded, by reason."""
    reasons: Counter[str] = Counter()
    for module, reason in ABANDONED.findall(log):
        if module == package or module.startswith(package + "."):
            # "file app/m05.py has different size" -> "file has different size"
            reasons[re.sub(r"^(file) \S+ ", r"\1 ", reason)] += 1
    return dict(sorted(reasons.items()))


# --8<-- [end:count]


# --8<-- [start:run]
def run_mypy(
    project: Path,
    cache_dir: Path,
    *flags: str,
    package: str = "app",
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
) -> MypyRun:
    """``mypy -v --cache-dir CACHE_DIR [flags] package`` in ``project``.

    The mypy of the running interpreter, so the version is the one in the
    lock. ``-v`` only adds log lines on stderr; it is not part of the
    options the cache is keyed by.
    """
    command = [sys.executable, "-m", "mypy", "-v", "--cache-dir", str(cache_dir)]
    result = subprocess.run(
        [*command, *flags, package],
        cwd=project,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode not in (0, 1):  # 2: mypy itself failed
        # (with --show-traceback the traceback is on stdout)
        output = result.stderr + result.stdout
        raise RuntimeError(f"mypy failed ({result.returncode}): {output}")
    return MypyRun(
        exit_code=result.returncode,
        report=result.stdout,
        rechecked=rechecked(result.stderr, package),
        abandoned=abandoned(result.stderr, package),
        log=result.stderr,
    )


# --8<-- [end:run]
