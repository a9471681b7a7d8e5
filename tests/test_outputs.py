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


def on_nats(output: Path) -> bool:
    """A NATS case: its demo calls ``services.nats(`` and its name says nats."""
    _, source = demo_module(output)
    uses = source.is_file() and "services.nats(" in source.read_text()
    return uses and "nats" in case_name(output)


def output_id(output: Path) -> str:
    return f"{output.parent.parent.name}/{output.stem}"


# Cases whose subject runs outside the Python that prints them. A demo built on
# snippets/support/frontend.py builds with Node.js and runs the JavaScript in
# Chromium, every case of it; these cases run a container. The version matrix
# runs them on the first Python only (tests/conftest.py, python_independent).
DOCKER_CASES = {
    "build_optimization/container_image_layers.cache_mount",
    "build_optimization/container_image_layers.rebuild",
    "container_orchestration/cpu_quota_sizing.docker",
    "container_orchestration/graceful_shutdown.container",
}


def engine_marks(output: Path) -> list[pytest.MarkDecorator]:
    _, source = demo_module(output)
    text = source.read_text() if source.is_file() else ""
    if "snippets.support import frontend" in text:
        return [pytest.mark.engine("Chromium"), pytest.mark.engine("Node.js")]
    if output_id(output) in DOCKER_CASES:
        return [pytest.mark.engine("Docker")]
    return []


# Each NATS case runs on the machine's server and on the venv's current one
# (tests/conftest.py, `current_nats_url`): both must print the same output.
RUNS = [
    pytest.param(output, "", id=output_id(output), marks=engine_marks(output))
    for output in OUTPUT_FILES
]
RUNS += [
    pytest.param(output, "nats-pypi", id=f"{output_id(output)}-nats-pypi")
    for output in OUTPUT_FILES
    if on_nats(output)
]


@pytest.mark.parametrize("case", sorted(DOCKER_CASES))
def test_a_docker_case_is_a_case_of_a_demo_that_runs_docker(case: str) -> None:
    output = ROOT / "snippets" / case.replace("/", "/output/", 1)
    output = output.with_name(output.name + ".txt")
    _, source = demo_module(output)
    assert output.is_file(), f"DOCKER_CASES names {case}, which has no output file"
    assert "docker" in source.read_text(), f"{source} never runs docker"


@pytest.mark.parametrize(("output", "server"), RUNS)
def test_output_file_is_what_the_demo_prints(
    output: Path, server: str, request: pytest.FixtureRequest
) -> None:
    module, source = demo_module(output)
    case = case_name(output)
    assert source.is_file() and "run_cases(" in source.read_text(), (
        f"{output.relative_to(ROOT)} has no command that prints it: "
        f"{source.relative_to(ROOT)} must end with run_cases({{{case!r}: ...}})"
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONHASHSEED": "0"}
    if server == "nats-pypi":
        env["CP_NATS_URL"] = request.getfixturevalue("current_nats_url")
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
