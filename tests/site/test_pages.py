"""The house rules, over every page and every snippet module.

The same checks run inside the build (tools/page_checks.py); here
they report every problem of the whole site at once, with file and line.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from tools.page_checks import (
    DOCS,
    INCLUDE,
    ROOT,
    TOPICS,
    check_page,
    iter_fences,
    page_kind,
)

PAGES = sorted(DOCS.rglob("*.md"))
PATTERN_PAGES = [page for page in PAGES if page_kind(page) == "pattern"]
# A pattern is a module, or above ~300 lines a package with a demo.py.
SNIPPET_MODULES = sorted(
    [
        path
        for path in (ROOT / "snippets").glob("*/*.py")
        if path.name != "__init__.py" and path.parent.name != "support"
    ]
    + [path.parent for path in (ROOT / "snippets").glob("*/*/demo.py")]
)
OUTPUT_FILES = sorted((ROOT / "snippets").glob("*/output/*.txt"))


def module_name(page: Path) -> str:
    return page.stem.replace("-", "_")


def package_name(page: Path) -> str:
    return page.parent.name.replace("-", "_")


def test_there_are_pages_and_a_pattern_page() -> None:
    assert len(PAGES) >= 12
    assert PATTERN_PAGES, "no pattern page found under docs/<topic>/"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_page_follows_the_house_rules(page: Path) -> None:
    problems = check_page(page)
    assert not problems, "\n".join(map(str, problems))


def test_every_topic_has_an_overview() -> None:
    for topic in TOPICS:
        assert (DOCS / topic / "index.md").is_file(), (
            f"docs/{topic}/index.md is missing"
        )


@pytest.mark.parametrize("page", PATTERN_PAGES, ids=lambda p: p.stem)
def test_pattern_page_has_its_snippet_and_test(page: Path) -> None:
    snippet = ROOT / "snippets" / package_name(page) / f"{module_name(page)}.py"
    test = ROOT / "tests" / package_name(page) / f"test_{module_name(page)}.py"
    package = snippet.with_suffix("") / "__init__.py"
    assert snippet.is_file() or package.is_file(), (
        f"{page.relative_to(ROOT)} has no {snippet.relative_to(ROOT)} "
        f"(or package {package.parent.relative_to(ROOT)}/)"
    )
    assert test.is_file(), f"{page.relative_to(ROOT)} has no {test.relative_to(ROOT)}"
    text = page.read_text()
    assert f"::: snippets.{package_name(page)}.{module_name(page)}" in text, (
        f"{page.relative_to(ROOT)} does not render its API with mkdocstrings"
    )


@pytest.mark.parametrize(
    "module", SNIPPET_MODULES, ids=lambda p: str(p.relative_to(ROOT / "snippets"))
)
def test_snippet_module_has_its_test_and_page(module: Path) -> None:
    test = ROOT / "tests" / module.parent.name / f"test_{module.stem}.py"
    page = (
        DOCS
        / module.parent.name.replace("_", "-")
        / (module.stem.replace("_", "-") + ".md")
    )
    assert test.is_file(), f"{module.relative_to(ROOT)} has no {test.relative_to(ROOT)}"
    assert page.is_file(), f"{module.relative_to(ROOT)} has no {page.relative_to(ROOT)}"


@functools.cache
def included_files() -> frozenset[Path]:
    found = set()
    for page in PAGES:
        for line in page.read_text().splitlines():
            match = INCLUDE.match(line)
            if match:
                found.add((ROOT / match["target"].partition(":")[0]).resolve())
    return frozenset(found)


@pytest.mark.parametrize("output", OUTPUT_FILES, ids=lambda p: p.name)
def test_output_file_is_shown_on_a_page(output: Path) -> None:
    # That a test compares each file with a real run is checked when the whole
    # suite has run: see pytest_sessionfinish in tests/conftest.py.
    assert output.resolve() in included_files(), (
        f"{output.relative_to(ROOT)} is not shown on any page; delete it or include it"
    )


def test_every_code_block_is_accounted_for() -> None:
    blocks = [
        fence for page in PAGES for fence in iter_fences(page.read_text().splitlines())
    ]
    included = [fence for fence in blocks if fence.only_includes]
    assert included, "no page includes tested code"
    assert all(fence.lang for fence in blocks)
