"""The GitHub workflows pass zizmor's security audit and pin every action."""

from __future__ import annotations

import re

from tests.conftest import ROOT
from tests.workflows import unpinned_actions, zizmor_executable, zizmor_findings

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def test_there_are_ci_and_pages_workflows() -> None:
    assert {path.name for path in WORKFLOWS} >= {"ci.yml", "pages.yml"}


def test_every_action_is_pinned_to_a_commit() -> None:
    unpinned = [line for workflow in WORKFLOWS for line in unpinned_actions(workflow)]
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
    zizmor = zizmor_executable()
    assert zizmor, "zizmor is pinned in requirements/test.lock; run `make venv`"
    findings = zizmor_findings(ROOT / ".github" / "workflows", zizmor)
    assert findings is None, findings
