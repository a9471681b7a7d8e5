"""The front-end test bed (snippets/web/): pinned, installed from its lockfile, linted.

``make test`` lints every page's JavaScript here with the pinned ESLint
(snippets/web/eslint.config.js); the pages' tests build it with Vite and
webpack and run it in Chromium.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from snippets.support import frontend
from snippets.support.services import ServiceUnavailable
from tests.conftest import ROOT, unavailable


@pytest.fixture(scope="module")
def web_bed() -> Path:
    try:
        return frontend.install()
    except ServiceUnavailable as error:
        unavailable("Node.js and npm", str(error))
        raise


def test_every_dependency_is_pinned_to_one_version() -> None:
    package = json.loads((frontend.WEB / "package.json").read_text())
    lock = json.loads((frontend.WEB / "package-lock.json").read_text())
    wanted = package["devDependencies"]
    assert {"vite", "webpack", "webpack-cli", "eslint"} <= set(wanted)
    for name, version in wanted.items():
        assert version[0].isdigit(), f"{name} is {version!r}, not one version"
        locked = lock["packages"][f"node_modules/{name}"]["version"]
        assert locked == version, f"the lockfile has {name} {locked}, not {version}"


def test_node_modules_is_not_committed() -> None:
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "snippets/web/node_modules/x"],
        cwd=ROOT,
        check=False,
    )
    assert ignored.returncode == 0, "snippets/web/node_modules/ is not in .gitignore"


def test_the_javascript_passes_eslint(web_bed: Path) -> None:
    frontend.eslint()


def test_eslint_catches_an_undefined_name(web_bed: Path) -> None:
    run = subprocess.run(
        [
            str(web_bed / ".bin" / "eslint"),
            "-c",
            str(frontend.WEB / "eslint.config.js"),
            "--stdin",
            "--stdin-filename",
            "snippets/code_splitting/example.js",
        ],
        input="export const x = undefinedName;\n",
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 1, run.stdout + run.stderr
    assert "'undefinedName' is not defined" in run.stdout


def test_pages_include_javascript_sections_marked_with_line_comments() -> None:
    from tools.page_checks import include_problem

    js = "snippets/code_splitting/chunk_load_errors/reload-once.js"
    assert include_problem(f"{js}:guard") is None
    assert include_problem(f"{js}:nosuch") == (
        "section 'nosuch' is not in " + js.replace(":", "")
    )
