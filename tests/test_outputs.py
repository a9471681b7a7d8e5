"""Output shown on a page is output that ran: the one check for every output file.

``snippets/<topic>/output/<pattern>.<case>.txt`` must be exactly the standard
output of ``python -m snippets.<topic>.<pattern>[.demo] <case>`` (see
``snippets/support/cases.py``). Run with ``UPDATE_OUTPUT=1`` to rewrite the
files after a deliberate change, then review the diff.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from snippets.support.cases import SERVICE_UNAVAILABLE
from tests.conftest import ROOT, unavailable

OUTPUT_FILES = sorted((ROOT / "snippets").glob("*/output/*.txt"))


def demo_module(output: Path) -> tuple[str, Path]:
    """``(module to run, its source file)`` for an output file."""
    topic = output.parent.parent.name
    pattern = output.name.split(".")[0]
    package = ROOT / "snippets" / topic / pattern
    if (package / "demo.py").is_file():
        return f"snippets.{topic}.{pattern}.demo", package / "demo.py"
    return f"snippets.{topic}.{pattern}", package.with_suffix(".py")


def case_name(output: Path) -> str:
    return output.name.split(".", 1)[1].removesuffix(".txt")


@pytest.mark.parametrize(
    "output",
    OUTPUT_FILES,
    ids=lambda p: f"{p.parent.parent.name}/{p.stem}",
)
def test_output_file_is_what_the_demo_prints(output: Path) -> None:
    module, source = demo_module(output)
    case = case_name(output)
    assert source.is_file() and "run_cases(" in source.read_text(), (
        f"{output.relative_to(ROOT)} has no command that prints it: "
        f"{source.relative_to(ROOT)} must end with run_cases({{{case!r}: ...}})"
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONHASHSEED": "0"}
    run = subprocess.run(
        [sys.executable, "-m", module, case],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=110,
    )
    if run.returncode == SERVICE_UNAVAILABLE:
        unavailable(f"`python -m {module} {case}`", run.stderr.strip())
    assert run.returncode == 0, (
        f"`python -m {module} {case}` exited {run.returncode}:\n{run.stderr}"
    )
    relative = output.relative_to(ROOT)
    if os.environ.get("UPDATE_OUTPUT") == "1":
        output.write_text(run.stdout)
        return
    assert run.stdout == output.read_text(), (
        f"`python -m {module} {case}` no longer prints what {relative} shows; "
        "if the change is intended, rerun with UPDATE_OUTPUT=1 and review the diff"
    )
