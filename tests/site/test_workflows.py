"""The GitHub workflows pass zizmor's security audit and pin every action."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def test_there_are_ci_and_pages_workflows() -> None:
    assert {path.name for path in WORKFLOWS} >= {"ci.yml", "pages.yml"}


def test_every_action_is_pinned_to_a_commit() -> None:
    unpinned = []
    for workflow in WORKFLOWS:
        for number, line in enumerate(workflow.read_text().splitlines(), 1):
            used = re.search(r"uses:\s*([^\s#]+)", line)
            if used and not re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", used[1]):
                unpinned.append(f"{workflow.name}:{number}: {used[1]}")
    assert not unpinned, "actions must be pinned to a commit SHA:\n" + "\n".join(
        unpinned
    )


def test_workflows_grant_least_permissions() -> None:
    for workflow in WORKFLOWS:
        text = workflow.read_text()
        assert re.search(r"(?m)^permissions:", text), (
            f"{workflow.name}: no top-level permissions"
        )
        assert "write-all" not in text


def test_zizmor_reports_nothing() -> None:
    zizmor = shutil.which("zizmor", path=str(Path(sys.executable).parent))
    assert zizmor, "zizmor is pinned in requirements/test.lock; run `make venv`"
    result = subprocess.run(
        [zizmor, "--offline", "--no-progress", str(ROOT / ".github" / "workflows")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings to report" in result.stdout + result.stderr
