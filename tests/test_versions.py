"""The Pythons and servers CI tests on come from one file, .ci/versions.

.ci/run and both workflows read it; neither names a version of its own, and the
workflow runs what .ci/run runs: `make test` once, the pattern tests on the
other Pythons, the ProperDocs build.
"""

from __future__ import annotations

import re

import yaml

from tests.conftest import ROOT
from tools.tested_on import ci_pythons, ci_versions

RUN = (ROOT / ".ci" / "run").read_text()
CI = (ROOT / ".github" / "workflows" / "ci.yml").read_text()
PAGES = (ROOT / ".github" / "workflows" / "pages.yml").read_text()


def test_the_versions_file_names_the_pythons_and_servers() -> None:
    versions = ci_versions()
    assert set(versions) == {"PYTHONS", "POSTGRES", "REDIS", "RABBITMQ", "NATS"}
    assert ci_pythons()[0] == "3.11", "make test runs on the oldest supported Python"
    for python in ci_pythons():
        assert re.fullmatch(r"3\.\d+", python), python


def test_no_ci_definition_names_a_version_of_its_own() -> None:
    for name, text in (("ci.yml", CI), ("pages.yml", PAGES), (".ci/run", RUN)):
        assert ".ci/versions" in text, f"{name} does not read .ci/versions"
        code = "\n".join(line.split(" #", 1)[0] for line in text.splitlines())
        pinned = re.findall(r"(?:python-version|image):\s*[\"']?\d", code)
        assert not pinned, f"{name} names a version itself: {pinned}"
        assert not re.search(r"PYTHONS=\"?3\.", code), f"{name} lists Pythons itself"


def test_the_workflow_runs_what_ci_run_runs() -> None:
    jobs = yaml.safe_load(CI)["jobs"]
    commands = {
        name: " ".join(step.get("run", "") for step in job["steps"])
        for name, job in jobs.items()
    }
    once = [name for name, run in commands.items() if "make test\n" in run + "\n"]
    assert once == ["test"] and "strategy" not in jobs["test"], commands
    assert "make test-all" in commands["patterns"]
    assert "other-pythons" in str(jobs["patterns"]["strategy"])
    assert "make properdocs" in commands["properdocs"]
    for command in ("make test-all", 'make test PYTHON="$python"', "make properdocs"):
        assert command in RUN, f".ci/run does not run {command}"
