"""Checks for GitHub Actions workflow files: the repository's and the pages'.

`unpinned_actions` lists every ``uses:`` that names a tag or branch instead
of a commit SHA; `zizmor_findings` runs zizmor's offline audit and returns
its report when it found something (``None`` when clean). The zizmor
executable is the one pinned in the locks, beside the running interpreter;
`zizmor_executable` returns ``None`` when it is not installed, and each
caller decides whether that fails or skips.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["unpinned_actions", "zizmor_executable", "zizmor_findings"]

USES = re.compile(r"uses:\s*([^\s#]+)")
PINNED = re.compile(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}")


def unpinned_actions(workflow: Path) -> list[str]:
    """``file:line: action@ref`` for each action not pinned to a commit."""
    unpinned = []
    for number, line in enumerate(workflow.read_text().splitlines(), 1):
        used = USES.search(line)
        if used and not PINNED.fullmatch(used[1]):
            unpinned.append(f"{workflow.name}:{number}: {used[1]}")
    return unpinned


def zizmor_executable() -> str | None:
    return shutil.which("zizmor", path=str(Path(sys.executable).parent))


def zizmor_findings(target: Path, zizmor: str) -> str | None:
    """zizmor's report on a workflow file or folder, or ``None`` if clean."""
    result = subprocess.run(
        [zizmor, "--offline", "--no-progress", str(target)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    report = result.stdout + result.stderr
    if result.returncode == 0 and "No findings to report" in report:
        return None
    return report or f"zizmor exited {result.returncode}"
