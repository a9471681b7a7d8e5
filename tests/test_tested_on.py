"""Every pattern page carries a current "tested on" stamp (tools/tested_on.py).

A stamp is stale when the pattern's snippet or test changed since the run that
wrote it, or when it lacks a Python that .ci/versions lists. `make test-all`
refreshes the stamps after a green run on every Python; this test only checks,
so it is left out of that run (tests/python_matrix.py).
"""

from __future__ import annotations

import json
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
