"""The closing lines of `make test`: what was built, verified and run.

Reads the site that `make build` wrote (site/), the fenced blocks of docs/, and
the JUnit report pytest wrote (.reports/pytest.xml).
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools.page_checks import DOCS, iter_fences  # noqa: E402


def main() -> int:
    pages = len(list((ROOT / "site").rglob("index.html")))
    fences = [
        fence
        for page in sorted(DOCS.rglob("*.md"))
        for fence in iter_fences(page.read_text().splitlines())
    ]
    included = sum(1 for fence in fences if fence.only_includes)
    report = ROOT / ".reports" / "pytest.xml"
    if not report.exists():
        print(f"no test report at {report.relative_to(ROOT)}: did pytest run?")
        return 1
    suites = ET.parse(report).getroot()
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for suite in suites.iter("testsuite"):
        for key in totals:
            totals[key] += int(suite.get(key, 0))
    failed = totals["failures"] + totals["errors"]
    passed = totals["tests"] - failed - totals["skipped"]
    print()
    print(f"site:   {pages} pages built (mkdocs build --strict, 0 warnings)")
    print(
        f"code:   {len(fences)} code blocks checked; {included} include tested "
        f"files, {len(fences) - included} are output, shell or diagrams"
    )
    print(f"tests:  {totals['tests']} ran")
    print(f"pytest: {passed} passed, {failed} failed, {totals['skipped']} skipped")
    return 1 if failed or totals["tests"] == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
