"""The strict build fails on bad input, and says where.

Each case breaks one thing in a copy of docs/ and builds it with the project's
own configuration. The build must fail, and its output must name the file and
line (or the page and section) so the reader can fix it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.site.conftest import build_site

GOOD_FRONT_MATTER = (
    "---\ntitle: Broken\ndescription: A page that breaks one rule on purpose, "
    "to prove that the build catches it.\n---\n\n# Broken { #broken }\n\n"
)

CASES = {
    "missing snippet section": (
        GOOD_FRONT_MATTER
        + '```python\n--8<-- "snippets/lazy_loading/thread_safe_lazy_init.py:nosuch"\n```\n',
        ["broken.md:8", "section 'nosuch' is not in snippets/lazy_loading/"],
    ),
    "missing snippet file": (
        GOOD_FRONT_MATTER + '```python\n--8<-- "snippets/lazy_loading/gone.py:x"\n```\n',
        ["broken.md:8", "snippet file 'snippets/lazy_loading/gone.py' does not exist"],
    ),
    "untested code block": (
        GOOD_FRONT_MATTER + "```python\nprint('typed into the page')\n```\n",
        ["broken.md:8", "code block (python) is not an include of a tested file"],
    ),
    "bad front matter": (
        "---\ntitle: Broken\ndescription: [unclosed\n---\n\n# Broken { #broken }\n",
        ["broken.md:", "front matter is not valid YAML"],
    ),
    "heading without id": (
        GOOD_FRONT_MATTER + "## A heading\n",
        ["broken.md:8", "heading has no explicit id"],
    ),
    "broken link": (
        GOOD_FRONT_MATTER + "See [nowhere](../no-such-page.md).\n",
        ["about/broken.md", "no-such-page.md"],
    ),
    "broken anchor": (
        GOOD_FRONT_MATTER + "See [the pattern](index.md#no-such-anchor).\n",
        ["about/broken.md", "no-such-anchor"],
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_strict_build_fails_and_names_the_place(
    case: str, docs_copy: Path, tmp_path: Path
) -> None:
    page, expected = CASES[case]
    (docs_copy / "about" / "broken.md").write_text(page)
    result = build_site(tmp_path / "site", docs_dir=docs_copy)
    output = result.stdout + result.stderr
    assert result.returncode != 0, f"the build accepted a page with a {case}"
    for fragment in expected:
        assert fragment in output, f"build output does not name {fragment!r}:\n{output}"


def test_a_page_left_out_of_the_navigation_fails_the_build(
    docs_copy: Path, tmp_path: Path
) -> None:
    (docs_copy / "about" / "orphan.md").write_text(GOOD_FRONT_MATTER)
    result = build_site(tmp_path / "site", docs_dir=docs_copy)
    assert result.returncode != 0
    assert "orphan.md" in result.stdout + result.stderr
