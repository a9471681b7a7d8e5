"""GNU make runs for the job-slot-budget demo and tests.

`run_make` runs ``make -j4`` on the page's Makefile
(``snippets/build_optimization/job_slot_budget/job_slot_budget.mk``) with its
jobs' gauge in a directory of the caller's. Run as a program, this module is a
jobserver client that takes a token from make and never writes it back:

    python -m snippets.support.build_optimization_make leak
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from snippets.build_optimization.job_slot_budget import Jobserver, parse_makeflags
from snippets.support.build_optimization_gauge import FileGauge
from snippets.support.services import ServiceUnavailable

__all__ = ["MAKEFILE", "make_env", "make_version", "peak", "run_make"]

ROOT = Path(__file__).resolve().parents[2]
MAKEFILE = ROOT / "snippets/build_optimization/job_slot_budget/job_slot_budget.mk"


def make_env() -> dict[str, str]:
    """This environment without any make of our own around it."""
    outer = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKE_TERMOUT", "MAKE_TERMERR")
    env = {k: v for k, v in os.environ.items() if k not in outer}
    env["PYTHONPATH"] = str(ROOT)
    return env


def make_version() -> str:
    """The first line of ``make --version``; ServiceUnavailable without make."""
    make = shutil.which("make")
    if make is None:
        raise ServiceUnavailable(
            "GNU make is not installed; install it with `apt-get install make`"
        )
    out = subprocess.run([make, "--version"], capture_output=True, text=True)
    return out.stdout.splitlines()[0]


def run_make(
    where: Path, *goals: str, count: int = 4, job: str = "", flags: str = "-s"
) -> subprocess.CompletedProcess[str]:
    """`make -j4` on the page's Makefile, with the jobs' gauge in ``where``."""
    make_version()
    return subprocess.run(
        [
            "make",
            flags,
            "-j4",
            "-f",
            str(MAKEFILE),
            *goals,
            f"PYTHON={sys.executable}",
            f"GAUGE={where / 'gauge.json'}",
            f"COUNT={count}",
            f"JOB_ARGS={job}",
        ],
        cwd=where,
        env=make_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def peak(where: Path) -> int:
    """The most jobs that ran at once in the last `run_make` in ``where``."""
    return FileGauge(where / "gauge.json").read()["peak"]


def leak() -> int:
    """Take the implicit slot and one token from make; write nothing back."""
    auth = parse_makeflags(os.environ["MAKEFLAGS"]).auth
    if auth is None:
        print("no jobserver in MAKEFLAGS", file=sys.stderr)
        return 2
    jobserver = Jobserver(auth)
    jobserver.acquire(timeout=5)  # the implicit slot
    jobserver.acquire(timeout=5)  # a token from make, never written back
    return 0


def main(argv: Sequence[str]) -> int:
    """``leak``: the jobserver client that loses a token."""
    if list(argv) != ["leak"]:
        print("usage: python -m snippets.support.build_optimization_make leak")
        return 2
    return leak()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
