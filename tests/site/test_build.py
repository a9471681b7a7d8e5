"""The strict build fails on bad input, and says where; the built site holds
nothing but pages and their assets.

Each failure case breaks one thing on a page of its own in a copy of docs/,
and the output of the build must name the file and line (or the page and
section) at a warning, which ``--strict`` turns into a failed build. The cases
share builds: strict mode reports every warning of a build, so one build
checks them all. Only a missing snippet stops the build at its page (the
snippets extension raises), before the anchors of other pages are checked,
so the snippet cases get a build of their own.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tools.build import CONFIG, build_site

# Each failure build takes a minute on a busy two-core machine.
pytestmark = pytest.mark.timeout(600)

GOOD_FRONT_MATTER = (
    "---\ntitle: Broken\ndescription: A page that breaks one rule on purpose, "
    "to prove that the build catches it.\n---\n\n# Broken { #broken }\n\n"
)

# Page (under docs/about/) → (its text, what the build output must name).
WARNINGS = {
    "untested code block": (
        "broken-code.md",
        GOOD_FRONT_MATTER + "```python\nprint('typed into the page')\n```\n",
        ["broken-code.md:8", "code block (python) is not an include of a tested file"],
    ),
    "bad front matter": (
        "broken-front-matter.md",
        "---\ntitle: Broken\ndescription: [unclosed\n---\n\n# Broken { #broken }\n",
        ["broken-front-matter.md:", "front matter is not valid YAML"],
    ),
    "double quote in the description": (
        "broken-description.md",
        '---\ntitle: Broken\ndescription: >-\n  Images with loading="lazy" in a '
        "description that the theme would cut at the quote.\n---\n\n"
        "# Broken { #broken }\n",
        ["broken-description.md:1", "description has a double quote"],
    ),
    "heading without id": (
        "broken-heading.md",
        GOOD_FRONT_MATTER + "## A heading\n",
        ["broken-heading.md:8", "heading has no explicit id"],
    ),
    "broken link": (
        "broken-link.md",
        GOOD_FRONT_MATTER + "See [nowhere](../no-such-page.md).\n",
        ["about/broken-link.md", "no-such-page.md"],
    ),
    "broken anchor": (
        "broken-anchor.md",
        GOOD_FRONT_MATTER + "See [the pattern](index.md#no-such-anchor).\n",
        ["about/broken-anchor.md", "no-such-anchor"],
    ),
    "support include": (
        "broken-support.md",
        GOOD_FRONT_MATTER + '```python\n--8<-- "snippets/support/cases.py"\n```\n',
        ["broken-support.md:8", "pages may not include 'snippets/support/cases.py'"],
    ),
    "page left out of the navigation": (
        "orphan.md",
        GOOD_FRONT_MATTER,
        ['not included in the "nav"', "about/orphan.md"],
    ),
}
SNIPPETS = {
    "missing snippet section": (
        "broken-snippets.md",
        GOOD_FRONT_MATTER
        + '```python\n--8<-- "snippets/lazy_loading/thread_safe_lazy_init.py:nosuch"'
        + '\n```\n\n```python\n--8<-- "snippets/lazy_loading/gone.py:x"\n```\n',
        ["broken-snippets.md:8", "section 'nosuch' is not in snippets/lazy_loading/"],
    ),
    "missing snippet file": (
        "broken-snippets.md",
        "",
        [
            "broken-snippets.md:12",
            "snippet file 'snippets/lazy_loading/gone.py' does not exist",
        ],
    ),
}


def broken_build(
    docs: Path, site: Path, cases: dict[str, tuple[str, str, list[str]]]
) -> str:
    """Write each case's page, put it in the navigation (unless it is about
    the navigation), build, and return the build's output."""
    from mkdocs.config import load_config

    nav = list(load_config(str(CONFIG))["nav"])
    for name, (page, text, _) in cases.items():
        if not text:
            continue  # a second case on the page before
        (docs / "about" / page).write_text(text)
        if "navigation" not in name:
            nav.append({name: f"about/{page}"})
    result: subprocess.CompletedProcess[str] = build_site(site, docs_dir=docs, nav=nav)
    assert result.returncode != 0, "the build accepted broken pages"
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def warnings_output(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("broken")
    return copy_and_build(root, WARNINGS)


@pytest.fixture(scope="module")
def snippets_output(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("broken-snippets")
    return copy_and_build(root, SNIPPETS)


def copy_and_build(root: Path, cases: dict[str, tuple[str, str, list[str]]]) -> str:
    import shutil

    shutil.copytree(ROOT / "docs", root / "docs")
    return broken_build(root / "docs", root / "site", cases)


def warned(output: str, fragment: str) -> bool:
    """The fragment is in a warning or error of the build, not just anywhere."""
    messages = re.split(r"(?m)^(?=[A-Z]+ +-  )", output)
    return any(
        fragment in message and message.startswith(("WARNING", "ERROR"))
        for message in messages
    )


@pytest.mark.parametrize("case", WARNINGS)
def test_strict_build_fails_and_names_the_place(
    case: str, warnings_output: str
) -> None:
    for fragment in WARNINGS[case][2]:
        assert warned(warnings_output, fragment), (
            f"no warning names {fragment!r} ({case}):\n{warnings_output}"
        )


@pytest.mark.parametrize("case", SNIPPETS)
def test_a_missing_snippet_fails_and_names_the_place(
    case: str, snippets_output: str
) -> None:
    for fragment in SNIPPETS[case][2]:
        assert warned(snippets_output, fragment), (
            f"no warning names {fragment!r} ({case}):\n{snippets_output}"
        )


# --------------------------------------------------------------------------- #
# What the site publishes
# --------------------------------------------------------------------------- #

# Files the site itself needs besides pages: search, sitemap, the API
# inventory that other sites' cross-references use.
SITE_FILES = {
    "404.html",
    "sitemap.xml",
    "sitemap.xml.gz",
    "objects.inv",
    "search/search_index.json",
}
ASSET_SUFFIXES = {
    ".css",
    ".js",
    ".mjs",
    ".map",
    ".png",
    ".svg",
    ".ico",
    ".webp",
    ".woff2",
}
# A vendored library ships its licence and version beside it.
VENDOR_NOTICES = {"LICENSE", "VERSION"}


def published_problem(relative: Path) -> str | None:
    """Why a file of the built site is not a page or a page's asset."""
    name = relative.as_posix()
    if relative.name == "index.html" or name in SITE_FILES:
        return None
    if relative.parts[0] == "assets":
        if relative.suffix in ASSET_SUFFIXES:
            return None
        if relative.parts[:2] == ("assets", "vendor") and relative.name in (
            VENDOR_NOTICES
        ):
            return None
        return "not an asset a page loads"
    return "neither a page nor under assets/"


def test_the_site_holds_only_pages_and_their_assets(built_site: Path) -> None:
    odd = [
        f"{path.relative_to(built_site)}: {reason}"
        for path in sorted(built_site.rglob("*"))
        if path.is_file()
        and (reason := published_problem(path.relative_to(built_site)))
    ]
    assert not odd, "the built site publishes build internals:\n  " + "\n  ".join(odd)


def test_the_published_files_rule_names_build_internals() -> None:
    for internal in ("link-ledger.txt", "redirects.yml", "pdf/print.css", "x.py"):
        assert published_problem(Path(internal)), internal
    for internal in ("assets/build.py", "assets/redirects.yml"):
        assert published_problem(Path(internal)), internal
    assert published_problem(Path("assets/stylesheets/extra.css")) is None
