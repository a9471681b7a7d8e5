"""Each pattern page's API reference shows the pattern's API: its ``__all__``.

The reference is rendered by mkdocstrings from the page's ``::: snippets.…``
block with ``filters: public`` (mkdocs.yml), so that a module's ``__all__``
decides what a reader sees: no test doubles, demos or helpers. A page's block
may not keep a member list of its own, which would drift from ``__all__``.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tools.links import page_url
from tools.page_checks import DOCS, outside_fences, page_kind

PATTERN_PAGES = sorted(p for p in DOCS.rglob("*.md") if page_kind(p) == "pattern")
BLOCK = re.compile(r"^:::\s+(?P<module>snippets(?:\.\w+)+)\s*$")


def api_block(page: Path) -> tuple[int, str, list[tuple[int, str]]] | None:
    """(line, module, option lines) of the page's ``:::`` block, if it has one."""
    lines = page.read_text().splitlines()
    for number, line in outside_fences(lines):
        found = BLOCK.match(line)
        if found:
            options = []
            for offset, option in enumerate(lines[number:], number + 1):
                if option.strip() and not option.startswith((" ", "\t")):
                    break
                options.append((offset, option))
            return number, found["module"], options
    return None


def module_file(module: str) -> Path:
    path = ROOT.joinpath(*module.split("."))
    package = path / "__init__.py"
    return package if package.is_file() else path.with_suffix(".py")


def declared_all(source: Path) -> list[str] | None:
    """The names a module's ``__all__`` lists, read without importing it."""
    tree = ast.parse(source.read_text(), str(source))
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            return [str(name) for name in ast.literal_eval(value)]
    return None


def rendered_names(html: str, module: str) -> set[str]:
    """Top-level names the API reference renders: the ids of its headings."""
    ids = re.findall(rf'\sid="{re.escape(module)}\.([^".]+)"', html)
    return set(ids)


def where(page: Path) -> str:
    return str(page.relative_to(ROOT))


@pytest.mark.parametrize("page", PATTERN_PAGES, ids=lambda p: p.stem)
def test_api_block_has_no_member_list(page: Path) -> None:
    block = api_block(page)
    assert block is not None, f"{where(page)} has no ::: snippets.… block"
    _, module, options = block
    listed = [n for n, line in options if re.match(r"\s+members\s*:", line)]
    assert not listed, (
        f"{where(page)}:{listed[0]}: the ::: {module} block lists its members; "
        "delete the list: the module's __all__ decides what is shown"
    )


@pytest.mark.parametrize("page", PATTERN_PAGES, ids=lambda p: p.stem)
def test_api_reference_shows_only_the_patterns_all(
    page: Path, built_site: Path
) -> None:
    block = api_block(page)
    assert block is not None, f"{where(page)} has no ::: snippets.… block"
    line, module, _ = block
    source = module_file(module)
    exported = declared_all(source)
    assert exported is not None, (
        f"{source.relative_to(ROOT)} declares no __all__: list the pattern's API"
    )
    html = built_site / page_url(page.relative_to(DOCS).as_posix()) / "index.html"
    shown = rendered_names(html.read_text(), module)
    # A pattern whose code is the browser's (JavaScript) may declare an empty
    # __all__: its reference is then the package's docstring, which names the
    # files the page shows.
    browser_only = exported == [] and any(source.parent.glob("*.js"))
    assert shown or browser_only, (
        f"{where(page)}:{line}: the API reference of {module} is empty"
    )
    extra = sorted(shown - set(exported))
    assert not extra, (
        f"{where(page)}:{line}: the API reference shows {extra}, which "
        f"{source.relative_to(ROOT)} does not list in __all__"
    )
    missing = sorted(set(documented_callables(module, exported)) - shown)
    assert not missing, (
        f"{where(page)}:{line}: {source.relative_to(ROOT)} lists {missing} in "
        "__all__ but the API reference does not show them: give each a "
        "docstring (mkdocstrings leaves out what has none), and name no "
        "submodule after a function or class its package re-exports"
    )


def documented_callables(module: str, exported: list[str]) -> list[str]:
    """The names in ``exported`` that are functions or classes of the snippets.

    Aliases of other libraries' objects (``Channel = Any``) are left out.
    """
    loaded = importlib.import_module(module)
    names = []
    for name in exported:
        value = getattr(loaded, name, None)
        ours = getattr(value, "__module__", "").startswith("snippets.")
        if ours and (inspect.isfunction(value) or inspect.isclass(value)):
            names.append(name)
    return names


def test_the_checks_read_all_and_headings() -> None:
    assert rendered_names(
        '<h3 id="snippets.a.b.Once">x</h3><h4 id="snippets.a.b.Once.get">'
        '<h3 id="snippets.a.b.wait_until">',
        "snippets.a.b",
    ) == {"Once", "wait_until"}
    example = ROOT / "snippets" / "support" / "cases.py"
    assert declared_all(example) is not None, "snippets/support/cases.py has __all__"
