"""The cases the version-skew page shows.

Run one with ``python -m snippets.code_splitting.version_skew.demo demo``.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from snippets.code_splitting.version_skew.loader import SkewSafeLoader
from snippets.code_splitting.version_skew.naive import NaiveLoader, PinnedLoader
from snippets.support.cases import run_cases
from snippets.support.code_splitting_skew import Loader, run

__all__: list[str] = []


# --8<-- [start:demo]
def demo(workdir: Path) -> list[str]:
    """Every scenario of the page, one line each."""
    cases: list[tuple[str, Callable[[str], Loader], bool, int]] = [
        ("pinned to v1", PinnedLoader, False, 0),
        ("reload on every error", NaiveLoader, False, 0),
        ("reload on every error, v2 broken", NaiveLoader, True, 0),
        ("reload once", SkewSafeLoader, False, 0),
        ("reload once, v2 broken", SkewSafeLoader, True, 0),
        ("grace period, keep 1 release", PinnedLoader, False, 1),
    ]
    lines = []
    for index, (label, make, broken, keep) in enumerate(cases):
        outcome = run(workdir / str(index), make, v2_broken=broken, keep_previous=keep)
        lines.append(f"{label}: {outcome}")
    return lines


# --8<-- [end:demo]


def show_demo() -> list[str]:
    """Every scenario of the page, in a scratch directory."""
    with tempfile.TemporaryDirectory() as tmp:
        return demo(Path(tmp))


if __name__ == "__main__":
    sys.exit(run_cases({"demo": show_demo}))
