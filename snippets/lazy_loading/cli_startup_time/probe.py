"""Measure what a command line imports: in a fresh interpreter, every time.

`imported_by` runs a CLI module as ``python -m`` would, in a subprocess, and
returns the modules it imported beyond the interpreter's own start-up: a
deterministic number, unlike a time. `import_tree` runs ``python -X
importtime`` and parses its tree.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "HEAVY",
    "ImportRow",
    "heavy_imported",
    "import_tree",
    "imported_by",
    "run_cli",
]

_ROOT = str(Path(__file__).resolve().parents[3])

# --8<-- [start:imported-by]
HEAVY = frozenset({"sqlalchemy", "boto3", "botocore"})

_PROBE = """
import importlib, json, sys
before = set(sys.modules)
target, code, *argv = sys.argv[1:]
if target:  # "package.module:function", called with the arguments
    module, _, name = target.partition(":")
    try:
        getattr(importlib.import_module(module), name)(argv)
    except SystemExit:
        pass
else:
    exec(code)
print("\\nIMPORTED " + json.dumps(sorted(set(sys.modules) - before)))
"""


def imported_by(
    target: str = "",
    argv: Sequence[str] = (),
    *,
    code: str = "",
    env: Mapping[str, str] | None = None,
) -> set[str]:
    """The modules a fresh interpreter imports to run ``target(argv)`` (a
    "module:function" such as a CLI's main) or `code`, beyond its start-up."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, target, code, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": _ROOT, **(env or {})},
        check=True,
    )
    last = done.stdout.rstrip().rsplit("\n", 1)[-1]
    return set(json.loads(last.removeprefix("IMPORTED ")))


def heavy_imported(modules: set[str]) -> list[str]:
    """The top-level packages in `modules` that a --help must not import."""
    return sorted({name.split(".")[0] for name in modules} & HEAVY)


# --8<-- [end:imported-by]


def run_cli(
    target: str, argv: Sequence[str], env: Mapping[str, str] | None = None
) -> tuple[str, set[str]]:
    """What ``target(argv)`` prints in a fresh interpreter, with its colours
    removed, and the modules it imported beyond its start-up."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, target, "", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": _ROOT, **(env or {})},
        check=True,
    )
    output, _, last = done.stdout.rstrip().rpartition("\n")
    modules = set(json.loads(last.removeprefix("IMPORTED ")))
    return re.sub(r"\x1b\[[0-9;]*m", "", output), modules


@dataclass(frozen=True)
class ImportRow:
    """One line of ``-X importtime``: times in microseconds, depth from 0."""

    self_us: int
    cumulative_us: int
    depth: int
    name: str


def import_tree(statement: str) -> list[ImportRow]:
    """Run ``python -X importtime -c statement``; parse its stderr."""
    env = {**os.environ, "PYTHONPATH": _ROOT}
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=True,
    )
    rows = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cumulative_us, name = line.removeprefix("import time:").split("|")
        depth = (len(name) - len(name.lstrip())) // 2
        rows.append(ImportRow(int(self_us), int(cumulative_us), depth, name.strip()))
    return rows
