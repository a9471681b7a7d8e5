"""An import-time regression test to copy into a CLI's test suite.

It runs ``python -X importtime -c "import yourcli"`` in a fresh interpreter,
and ``--help`` the same way, and fails if a heavy package is among the
modules reported: a set of names, the same on every run, where a timer
would report noise.
"""

from __future__ import annotations

import subprocess
import sys

__all__ = [
    "CLI_MODULE",
    "HEAVY",
    "imported_modules",
    "test_cli_help_imports_nothing_heavy",
    "test_cli_imports_nothing_heavy",
]

# --8<-- [start:guard]
CLI_MODULE = "snippets.lazy_loading.cli_startup_time.typer_lazy"  # your CLI
HEAVY = {"sqlalchemy", "boto3", "botocore"}  # packages start-up must not import


def imported_modules(statement: str) -> set[str]:
    """The modules ``python -X importtime -c statement`` reports."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    # "import time:  self |  cumulative |   package.module": keep the name.
    # Python 3.14's -X importtime=2 prints "cached" in both time columns.
    return {
        line.rsplit("|", 1)[1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and "self [us]" not in line
    }


def _heavy(statement: str) -> list[str]:
    return sorted({name.split(".")[0] for name in imported_modules(statement)} & HEAVY)


def test_cli_imports_nothing_heavy() -> None:
    heavy = _heavy(f"import {CLI_MODULE}")
    assert not heavy, f"import {CLI_MODULE} imports {heavy}"


def test_cli_help_imports_nothing_heavy() -> None:
    # app(...) ends with SystemExit(0) after printing the help.
    heavy = _heavy(f"from {CLI_MODULE} import app; app(['--help'])")
    assert not heavy, f"{CLI_MODULE} --help imports {heavy}"


# --8<-- [end:guard]
