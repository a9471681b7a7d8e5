"""Every pattern page carries a current "tested on" stamp (tools/tested_on.py).

A stamp is stale when the pattern's snippet or test changed since the run that
wrote it, or when it lacks a Python that .ci/versions lists. `make test-all`
refreshes the stamps after a green run on every Python; this test only checks,
so it is left out of that run (tests/python_matrix.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.conftest import ROOT
from tools import tested_on
from tools.tested_on import Pattern

PATTERNS = tested_on.patterns()
PATTERN_PAGES = sorted(
    page
    for page in (ROOT / "docs").glob("*/*.md")
    if page.name != "index.md" and page.parent.name != "about"
)


def test_every_pattern_page_is_a_pattern() -> None:
    pages = {pattern.page for pattern in PATTERNS}
    assert pages == set(PATTERN_PAGES)


@pytest.mark.parametrize("pattern", PATTERNS, ids=lambda pattern: pattern.key)
def test_the_stamp_is_current(pattern: Pattern) -> None:
    problem = tested_on.stamp_problem(pattern)
    assert problem is None, problem


def test_a_changed_snippet_makes_the_stamp_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pattern = PATTERNS[0]
    monkeypatch.setattr(tested_on, "STAMPS", tmp_path)
    stamp = {
        "sha256": pattern.digest(),
        "python": [f"{version}.0" for version in tested_on.ci_pythons()],
        "servers": {},
        "date": "2026-01-02",
    }
    pattern.stamp.parent.mkdir(parents=True)
    pattern.stamp.write_text(json.dumps(stamp))
    assert tested_on.stamp_problem(pattern) is None
    pattern.stamp.write_text(json.dumps({**stamp, "sha256": "0" * 64}))
    problem = tested_on.stamp_problem(pattern)
    assert problem is not None
    assert f"{tested_on.shown(pattern.stamp)} is older than" in problem
    assert "make test-all" in problem
    pattern.stamp.write_text(json.dumps({**stamp, "python": ["3.11.7"]}))
    assert "lacks Python" in str(tested_on.stamp_problem(pattern))


def test_the_page_shows_the_stamp_under_its_title(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pattern = PATTERNS[0]
    monkeypatch.setattr(tested_on, "STAMPS", tmp_path)
    pattern.stamp.parent.mkdir(parents=True)
    pattern.stamp.write_text(
        json.dumps(
            {
                "sha256": pattern.digest(),
                "python": [f"{version}.1" for version in tested_on.ci_pythons()],
                "servers": {"PostgreSQL": "15.20", "Redis": "7.0.15"},
                "date": "2026-12-06",
            }
        )
    )
    page = SimpleNamespace(
        file=SimpleNamespace(abs_src_path=str(pattern.page), src_uri="x.md")
    )
    html = tested_on.on_page_content('<h1 id="t">Title</h1>\n<p>Text</p>', page=page)
    first, second = html.split("\n")[:2]
    assert first == '<h1 id="t">Title</h1>'
    pythons = [f"{version}.1" for version in tested_on.ci_pythons()]
    assert second == (
        '<p class="tested-on"><small>Tested on Python '
        f"{', '.join(pythons[:-1])} and {pythons[-1]} with PostgreSQL 15.20 "
        "and Redis 7.0.15, 6 December 2026.</small></p>"
    )
    other = SimpleNamespace(
        file=SimpleNamespace(abs_src_path=str(ROOT / "docs" / "index.md"), src_uri="i")
    )
    assert tested_on.on_page_content("<h1>Home</h1>", page=other) == "<h1>Home</h1>"


def record(pattern: Pattern, python: str, *, ran: int, left: int) -> dict[str, object]:
    """A run's record as tests/conftest.py writes it, for one pattern."""
    entry = {
        "sha256": pattern.digest(),
        "passed": True,
        "ran": ran,
        "left_to_first_python": left,
        "uses": ["Chromium"],
        "servers": {"Chromium": "156.0"},
        "python": python,
        "date": "2026-12-07",
    }
    return {"python": python, "patterns": {pattern.key: entry}}


def write_records(runs: dict[str, dict[str, object]]) -> None:
    tested_on.RECORDS.mkdir()
    for version, run in runs.items():
        (tested_on.RECORDS / f"{version}.json").write_text(json.dumps(run))


@pytest.fixture
def only_pattern(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Pattern:
    """The first pattern, alone, with its stamp and the run records in tmp_path."""
    pattern = PATTERNS[0]
    monkeypatch.setattr(tested_on, "STAMPS", tmp_path / "stamps")
    monkeypatch.setattr(tested_on, "RECORDS", tmp_path / "records")
    monkeypatch.setattr(tested_on, "patterns", lambda: [pattern])
    return pattern


def test_tests_left_to_the_first_python_are_named_on_the_stamp(
    only_pattern: Pattern,
) -> None:
    pattern = only_pattern
    first, *others = tested_on.ci_pythons()
    runs = {first: record(pattern, f"{first}.7", ran=5, left=0)}
    runs |= {v: record(pattern, f"{v}.1", ran=3, left=2) for v in others}
    write_records(runs)
    assert tested_on.write_stamps(tested_on.ci_pythons()) == []
    stamp = json.loads(pattern.stamp.read_text())
    assert stamp["engines_on_python"] == f"{first}.7"
    assert len(stamp["python"]) == len(runs)
    assert tested_on.stamp_problem(pattern) is None
    assert f"(the Chromium tests on Python {first}.7)" in tested_on.stamp_line(stamp)


def test_a_pattern_run_only_on_the_first_python_is_stamped_with_it_alone(
    only_pattern: Pattern,
) -> None:
    pattern = only_pattern
    first, *others = tested_on.ci_pythons()
    runs = {first: record(pattern, f"{first}.7", ran=4, left=0)}
    runs |= {v: record(pattern, f"{v}.1", ran=0, left=4) for v in others}
    write_records(runs)
    assert tested_on.write_stamps(tested_on.ci_pythons()) == []
    stamp = json.loads(pattern.stamp.read_text())
    assert stamp["python"] == [f"{first}.7"]
    assert tested_on.stamp_problem(pattern) is None
    assert tested_on.stamp_line(stamp).startswith(
        f"Tested on Python {first}.7 with Chromium 156.0, "
    )
    # the same stamp without the mark lacks the other Pythons
    pattern.stamp.write_text(json.dumps({**stamp, "engines_on_python": ""}))
    assert "lacks Python" in str(tested_on.stamp_problem(pattern))


def test_the_first_python_may_not_leave_tests_out(
    only_pattern: Pattern,
) -> None:
    pattern = only_pattern
    first, *others = tested_on.ci_pythons()
    runs = {v: record(pattern, f"{v}.1", ran=3, left=2) for v in [first, *others]}
    write_records(runs)
    problems = tested_on.write_stamps(tested_on.ci_pythons())
    assert problems == [
        f"{pattern.key}: 2 tests left out on Python {first}, "
        "the first Python, which runs every test"
    ]
    assert not pattern.stamp.exists()


def test_a_run_records_a_pattern_only_with_its_own_test_module(tmp_path: Path) -> None:
    """Its output checks alone (tests/test_outputs.py -k) do not test a pattern."""
    key = "code_splitting/single_flight_loader"

    def run(*paths: str) -> dict[str, object]:
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
             "-p", "no:xdist", *paths, "-k", "single_flight"],
            cwd=ROOT, capture_output=True, text=True, timeout=300,
            env={**os.environ, "CP_TESTED_ON_RECORDS": str(tmp_path)},
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        records = list(tmp_path.glob("*.json"))
        if not records:
            return {}
        patterns: dict[str, object] = json.loads(records[0].read_text())["patterns"]
        return patterns

    assert key not in run("tests/test_outputs.py")
    assert key in run("tests/code_splitting/test_single_flight_loader.py",
                      "tests/test_outputs.py")  # fmt: skip


def test_the_version_matrix_leaves_out_exactly_the_engine_tests() -> None:
    """`--python-dependent-only` deselects the Chromium, Node.js and Docker tests."""

    def collected(*options: str) -> set[str]:
        run = subprocess.run(
            [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p",
             "no:cacheprovider", *options, "tests/code_splitting",
             "tests/container_orchestration/test_cpu_quota_sizing.py",
             "tests/test_outputs.py"],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert run.returncode == 0, run.stdout + run.stderr
        return {line for line in run.stdout.splitlines() if "::" in line}

    every, matrix = collected(), collected("--python-dependent-only")
    left = every - matrix
    assert matrix < every
    # the browser pages' tests and outputs, and the container cases, went
    assert any("test_chunk_load_errors.py::" in test for test in left)
    assert any("[code_splitting/chunk_load_errors." in test for test in left)
    assert any("[container_orchestration/cpu_quota_sizing.docker]" in t for t in left)
    # the same pages' Python-only neighbours stayed
    assert any("test_single_flight_loader.py::" in test for test in matrix)
    assert any("[container_orchestration/cpu_quota_sizing.sizes]" in t for t in matrix)
    assert not any("single_flight_loader" in test for test in left)
