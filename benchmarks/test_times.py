"""Where the test suite's time goes: the "Test suite" section of results.md.

Reads the JUnit files the last runs wrote (``make test``:
``.reports/pytest.xml``; ``make test-all``: ``.reports/python-3.X.xml``) and
writes, per run, the wall time pytest reported and the test seconds by area
(a site check module, a topic's pattern tests, a topic's output checks).
Worker-seconds add up across parallel workers, so they exceed the wall time.

    python -m benchmarks.test_times [REPORTS_DIR]   # default: .reports/
"""

from __future__ import annotations

import datetime
import re
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

from benchmarks.bench import write_section

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results.md"
BEGIN = "<!-- test-suite: written by `python -m benchmarks.test_times` -->"
END = "<!-- /test-suite -->"
TOP = 12


def area(classname: str, name: str) -> str:
    """The part of the suite a test belongs to, as the table names it."""
    if classname == "tests.test_outputs":
        found = re.match(r"\w+\[(\w+)/", name)
        return f"output checks: {found[1] if found else '?'}"
    parts = classname.split(".")
    if parts[:2] == ["tests", "site"]:
        return f"site: {parts[2]}"
    if len(parts) == 3 and parts[0] == "tests":
        return f"pattern tests: {parts[1]}"
    return f"other: {'.'.join(parts[1:])}"


def summary(path: Path) -> list[str]:
    root = ET.parse(path).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    assert suite is not None, f"{path}: no <testsuite>"
    seconds: dict[str, float] = {}
    counts: Counter[str] = Counter()
    for case in suite.iter("testcase"):
        key = area(case.get("classname", ""), case.get("name", ""))
        seconds[key] = seconds.get(key, 0.0) + float(case.get("time", 0))
        counts[key] += 1
    wall = float(suite.get("time", 0))
    total = sum(seconds.values())
    lines = [
        f"### `{path.name}`: {sum(counts.values())} tests, {wall / 60:.1f} min wall,"
        f" {total / 60:.1f} min of test time",
        "",
        "| Area | Tests | Test seconds | Share |",
        "|---|---:|---:|---:|",
    ]
    largest = sorted(seconds.items(), key=lambda item: -item[1])[:TOP]
    for key, value in largest:
        lines.append(f"| {key} | {counts[key]} | {value:.0f} | {value / total:.0%} |")
    rest = total - sum(value for _, value in largest)
    if rest > 0:
        lines.append(f"| the rest | | {rest:.0f} | {rest / total:.0%} |")
    return [*lines, ""]


def main(argv: list[str]) -> int:
    reports = Path(argv[0]) if argv else ROOT / ".reports"
    files = sorted(reports.glob("pytest.xml")) + sorted(reports.glob("python-3*.xml"))
    if not files:
        print(f"no JUnit files in {reports}: run make test first", file=sys.stderr)
        return 1
    today = datetime.date.today().isoformat()
    lines = [
        BEGIN,
        "## Test suite",
        "",
        f"From the JUnit files of one `.ci/run` ({today}, 2 cores): `make test`"
        " on the first Python beside `make test-all` on the others, which leaves"
        " the Chromium, Node.js and Docker tests to the first.",
        "",
    ]
    whole = reports / "ci-run-seconds"
    if whole.is_file():
        seconds = int(whole.read_text())
        lines += [f"The whole `.ci/run`: {seconds // 60} min {seconds % 60} s.", ""]
    for path in files:
        lines += summary(path)
    write_section(RESULTS, "\n".join([*lines, END]))
    print(f"wrote the test-suite section of {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
