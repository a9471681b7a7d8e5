"""The tests of an earlier suite, run on today's code: an argument file for pytest.

A speed target set against "the tests as they were" (issue 12: ``make test``
within 8 minutes with the tests of the day it was filed) cannot be checked by
a suite that has grown since. This writes the pytest arguments that select,
from today's suite, the tests of the patterns that had a page at an earlier
commit (moved pages followed through links/redirects.yml), their output
checks, and every test that belongs to no pattern (the site's, the tools').
The site's checks cover today's site, which has more pages: the selection is
never smaller than the earlier suite.

    python -m benchmarks.same_tests COMMIT   # .reports/same-tests{,-matrix}.args
    make test PYTEST_ARGS=@.reports/same-tests.args
    PYTHONS="3.12 3.13" python tests/python_matrix.py @.reports/same-tests-matrix.args

The second file leaves out what the version matrix never runs (the site's
checks and the stamps' check): a path named on pytest's command line is
collected even when ``--ignore`` names its folder.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from tests.test_outputs import OUTPUT_FILES, output_id
from tools import tested_on

ROOT = Path(__file__).resolve().parent.parent


def pages_at(commit: str) -> set[str]:
    """The pattern pages (``topic/slug.md`` under docs/) at ``commit``."""
    listing = subprocess.run(
        ["git", "ls-tree", "-r", "--name-only", commit, "docs"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return {
        path.removeprefix("docs/")
        for path in listing
        if path.endswith(".md")
        and path.count("/") == 2
        and not path.endswith("/index.md")
        and not path.startswith(("docs/about/", "docs/assets/"))
    }


def arguments(commit: str, *, matrix: bool = False) -> list[str]:
    moved = yaml.safe_load((ROOT / "links" / "redirects.yml").read_text())["pages"]
    then = {moved.get(page, page) for page in pages_at(commit)}
    chosen = [
        p
        for p in tested_on.patterns()
        if str(p.page.relative_to(ROOT / "docs")) in then
    ]
    keys = {pattern.key for pattern in chosen}
    tests = ROOT / "tests"
    others = [
        path
        for path in sorted(tests.rglob("test_*.py"))
        if path.parent == tests or (path.parent.name == "site" and not matrix)
    ]
    if matrix:
        others = [path for path in others if path.name != "test_tested_on.py"]
    args = [
        str(path.relative_to(ROOT)) for path in others if path.name != "test_outputs.py"
    ]
    args += [str(pattern.test.relative_to(ROOT)) for pattern in chosen]
    check = "tests/test_outputs.py::test_output_file_is_what_the_demo_prints"
    for output in OUTPUT_FILES:
        if output_id(output).split(".")[0] in keys:
            args.append(f"{check}[{output_id(output)}]")
    return args


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    for name, matrix in (("same-tests", False), ("same-tests-matrix", True)):
        out = ROOT / ".reports" / f"{name}.args"
        args = arguments(argv[0], matrix=matrix)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("\n".join(args) + "\n")
        print(f"{out.relative_to(ROOT)}: {len(args)} arguments")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
