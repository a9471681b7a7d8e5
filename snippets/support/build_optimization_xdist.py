"""Run the parallel-tests suites with the real pytest and pytest-xdist.

A suite is written to a fresh folder (``conftest.py`` plus test modules copied
from snippets/build_optimization/parallel_tests/suites/) and run as
``python -m pytest`` in a subprocess, with the repository on ``PYTHONPATH``,
nothing of the calling pytest's environment (``PYTEST_XDIST_*``,
``PYTEST_ADDOPTS``), and the outcomes read from a JUnit XML report.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from snippets.support.services import ServiceUnavailable

__all__ = [
    "ROOT",
    "SUITES",
    "Run",
    "free_port",
    "run_pytest",
    "two_cpus",
    "versions",
    "write_suite",
]

ROOT = Path(__file__).resolve().parents[2]
SUITES = ROOT / "snippets/build_optimization/parallel_tests/suites"


@dataclass
class Run:
    """One pytest run: its exit status, output and each test's outcome."""

    returncode: int
    output: str
    outcomes: dict[str, str]  # "test_one.py::test_server_port" -> "failed"
    messages: dict[str, str]  # the failure message of each failed test
    setups: int  # lines in shared/setups.log: how often the session setup ran
    ran_on: list[str]  # the workers that left a ran-on-<worker> file, sorted

    def count(self, test: str, outcome: str) -> int:
        """How many copies of ``test`` (a function name) had ``outcome``."""
        return sum(
            1
            for node, result in self.outcomes.items()
            if node.split("::")[-1] == test and result == outcome
        )

    def workers(self) -> int | None:
        """The workers pytest-xdist created (``created: N/N workers``)."""
        match = re.search(r"^created: (\d+)/\d+ workers?$", self.output, re.M)
        if match:
            return int(match[1])
        match = re.search(r"^xdist workers: (\d+)$", self.output, re.M)
        return int(match[1]) if match else None


def write_suite(where: Path, modules: Mapping[str, str]) -> Path:
    """A suite folder: ``conftest.py`` and ``{test file: suite module}``."""
    where.mkdir(parents=True)
    (where / "conftest.py").write_text((SUITES / "suite_conftest.py").read_text())
    for target, source in modules.items():
        (where / target).write_text((SUITES / f"{source}.py").read_text())
    return where


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def two_cpus() -> set[int]:
    """The first two CPUs this process may use, so counts match everywhere."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise ServiceUnavailable("this needs a machine with at least two CPUs")
    return set(cpus[:2])


def run_pytest(
    suite: Path,
    *args: str,
    cpus: set[int] | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
) -> Run:
    """``python -m pytest ARGS`` in ``suite``, optionally on ``cpus`` only."""
    report, shared = suite / "report.xml", suite / "shared"
    report.unlink(missing_ok=True)
    shutil.rmtree(shared, ignore_errors=True)  # each run starts with nothing shared
    shared.mkdir()
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTEST_", "PYTHON_CPU_COUNT")) and k != "CI"
    }
    clean |= {"PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    clean |= {"SUITE_SHARED": str(suite / "shared"), "SUITE_PORT": str(free_port())}
    clean |= dict(env or {})
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"]
    command += ["-o", "timeout=60", f"--junitxml={report}", *args]
    pin = None if cpus is None else (lambda: os.sched_setaffinity(0, cpus))
    done = subprocess.run(
        command,
        cwd=suite,
        env=clean,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=pin,
    )
    outcomes: dict[str, str] = {}
    messages: dict[str, str] = {}
    if report.is_file():
        for case in ET.parse(report).iter("testcase"):
            node = f"{case.get('classname')}.py::{case.get('name')}"
            outcomes[node] = "passed"
            for kind in ("failure", "error", "skipped"):
                found = case.find(kind)
                if found is not None:
                    outcomes[node] = {"failure": "failed"}.get(kind, kind)
                    messages[node] = found.get("message", "")
    log = shared / "setups.log"
    setups = len(log.read_text().splitlines()) if log.is_file() else 0
    ran_on = sorted(p.name.removeprefix("ran-on-") for p in shared.glob("ran-on-*"))
    output = done.stdout + done.stderr
    return Run(done.returncode, output, outcomes, messages, setups, ran_on)


def versions() -> str:
    return f"pytest {version('pytest')}, pytest-xdist {version('pytest-xdist')}"
