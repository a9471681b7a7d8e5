"""The build's caches never serve stale output.

The caches are tools/build_cache.py's and the preview cards' (tools/previews.py).

For each cache: a second run with the same input is served from the cache
and gives the same output as the first; a changed input (the code, a
setting, the HTML, the template, the card's text) gives a new output, the
one the uncached function gives; an entry that is cut short or missing is
computed again, not an error, and written whole.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jinja2
import pytest

from tools import build_cache, previews

CODE = (
    "```python\nimport asyncio\n\n"
    "async def main() -> None:\n    await asyncio.sleep(0)\n```\n"
)


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty cache of our own, with the build's wrappers installed."""
    root = tmp_path / "cache"
    monkeypatch.setattr(build_cache, "CACHE", root)
    monkeypatch.setattr(previews, "CACHE", root / "previews")
    monkeypatch.delenv(build_cache.SWITCH, raising=False)
    build_cache.install()
    yield root


def counts(kind: str) -> tuple[int, int]:
    stats = build_cache.stats()
    return stats.get(f"{kind}.hit", 0), stats.get(f"{kind}.miss", 0)


def entries(root: Path, kind: str) -> list[Path]:
    return sorted(p for p in (root / kind).rglob("*") if p.is_file())


def uncached(monkeypatch: pytest.MonkeyPatch, make: Any) -> Any:
    with monkeypatch.context() as switched:
        switched.setenv(build_cache.SWITCH, "0")
        return make()


def cut_short(paths: list[Path]) -> None:
    for path in paths:
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


def html_of(text: str, **highlight: Any) -> str:
    markdown: Any = importlib.import_module("markdown")
    md = markdown.Markdown(
        extensions=["pymdownx.highlight", "pymdownx.superfences"],
        extension_configs={"pymdownx.highlight": highlight},
    )
    return str(md.convert(text))


def test_highlighted_code_follows_its_source_and_settings(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = html_of(CODE, pygments_lang_class=True)
    assert first == uncached(
        monkeypatch, lambda: html_of(CODE, pygments_lang_class=True)
    )
    assert entries(cache, "highlight"), "nothing was cached"
    hits = counts("highlight")[0]
    assert html_of(CODE, pygments_lang_class=True) == first
    assert counts("highlight")[0] == hits + 1

    changed = CODE.replace("sleep(0)", "sleep(1)")
    second = html_of(changed, pygments_lang_class=True)
    assert second != first
    assert second == uncached(
        monkeypatch, lambda: html_of(changed, pygments_lang_class=True)
    )
    # A setting of the highlighter is part of the key, not only the code.
    plain = html_of(CODE)
    assert plain != first
    assert plain == uncached(monkeypatch, lambda: html_of(CODE))


def test_a_broken_highlight_entry_is_computed_again(cache: Path) -> None:
    first = html_of(CODE)
    stored = entries(cache, "highlight")
    cut_short(stored)
    assert html_of(CODE) == first
    stored[0].unlink()
    assert html_of(CODE) == first
    assert [p.read_text() for p in entries(cache, "highlight")] == [
        p.read_text() for p in stored
    ]


def sections(html: str) -> list[tuple[str | None, list[str], list[str]]]:
    search: Any = importlib.import_module("material.plugins.search.plugin")
    parser = search.Parser()
    parser.feed(html)
    parser.close()
    return [(s.id, s.title, s.text) for s in parser.data]


PAGE = (
    '<h1 id="top">Top</h1><p>Intro <code>x</code></p>'
    '<h2 id="more">More</h2><p>Text</p><div data-search-exclude><p>no</p></div>'
)


def test_search_sections_follow_the_html(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = sections(PAGE)
    assert first == uncached(monkeypatch, lambda: sections(PAGE))
    assert first[1] == ("more", ["More"], ["<p>", "Text", "</p>"])
    hits = counts("search")[0]
    assert sections(PAGE) == first
    assert counts("search")[0] == hits + 1

    changed = PAGE.replace("<p>Text</p>", "<p>Other text</p>")
    assert sections(changed) != first
    assert sections(changed) == uncached(monkeypatch, lambda: sections(changed))

    cut_short(entries(cache, "search"))
    assert sections(PAGE) == first
    assert sections(changed) == uncached(monkeypatch, lambda: sections(changed))


def test_search_sections_of_every_page_are_the_plugins_own(built_site: Path) -> None:
    """Parsed without the code's token spans, each page of the site gives the
    sections the search plugin's own parser gives: the same ids, titles and
    text (the index joins each list), and the spans really were taken out."""
    search: Any = importlib.import_module("material.plugins.search.plugin")
    own = search.Parser.__mro__[1]
    assert own.__module__ == search.__name__, "the plugin's parser is not wrapped"

    def joined(parser: Any, html: str) -> list[tuple[Any, ...]]:
        parser.feed(html)
        parser.close()
        return [
            (s.el.tag, s.depth, s.id, "".join(s.title), "".join(s.text))
            for s in parser.data
        ]

    leaner = 0
    for page in sorted(built_site.rglob("index.html")):
        html = page.read_text()
        lean = build_cache.without_token_spans(html)
        leaner += lean.count("<span") < html.count("<span")
        assert joined(own(), lean) == joined(own(), html), page
    assert leaner > 50


def test_a_code_block_with_other_spans_is_left_whole() -> None:
    block = (
        '<pre><span class="linenos" data-linenos="1 "></span>'
        '<span class="n">x</span></pre>'
    )
    assert build_cache.without_token_spans(block) == block
    plain = (
        '<p><span class="n">x</span></p>'
        '<pre><code><span class="n">x</span> <span>=</span></code></pre>'
    )
    assert build_cache.without_token_spans(plain) == (
        '<p><span class="n">x</span></p><pre><code>x =</code></pre>'
    )


def test_formatted_signatures_follow_the_code_and_line_length(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mkdocstrings_handlers.python._internal import rendering

    code = "def f(first_argument: int, second_argument: str) -> None: ...\n"
    formatter = rendering._get_formatter()
    wide = formatter(code, 88)
    narrow = formatter(code, 30)
    assert wide != narrow, "the line length is part of the key"
    assert narrow == uncached(monkeypatch, lambda: rendering._get_formatter()(code, 30))
    hits = counts("signature")[0]
    assert formatter(code, 88) == wide
    assert counts("signature")[0] == hits + 1
    renamed = code.replace("first_argument", "renamed")
    assert formatter(renamed, 88) == uncached(
        monkeypatch, lambda: rendering._get_formatter()(renamed, 88)
    )
    assert "renamed" in formatter(renamed, 88)
    cut_short(entries(cache, "signature"))
    assert formatter(code, 88) == wide


def test_compiled_templates_follow_their_source(cache: Path, tmp_path: Path) -> None:
    folder = tmp_path / "templates"
    folder.mkdir()
    page = folder / "page.html"
    page.write_text("<p>{{ name | upper }}</p>")

    def render() -> str:
        env = jinja2.Environment(loader=jinja2.FileSystemLoader(folder))
        return env.get_template("page.html").render(name="a")

    assert render() == "<p>A</p>"
    assert entries(cache, "template"), "nothing was cached"
    hits = counts("template")[0]
    assert render() == "<p>A</p>"
    assert counts("template")[0] == hits + 1
    page.write_text("<p>{{ name }}!</p>")
    assert render() == "<p>a!</p>"
    # Read from disk, as the next build's process does: cut short, it is compiled again.
    shared = getattr(jinja2.Environment, build_cache.MARK)
    shared.memory.clear()
    cut_short(entries(cache, "template"))
    assert render() == "<p>a!</p>"
    shared.memory.clear()
    assert render() == "<p>a!</p>"


def test_a_preview_card_follows_its_text_and_is_drawn_again_when_cut_short(
    cache: Path,
) -> None:
    card = ("Concurrency Patterns", "Lazy loading", "A title", "A description.")
    first = previews.cached_card(card)
    drawn = first.read_bytes()
    assert drawn.endswith(previews.PNG_END)
    other = previews.cached_card((*card[:2], "Another title", card[3]))
    assert other != first and other.read_bytes() != drawn
    first.write_bytes(drawn[:1000])
    assert previews.cached_card(card).read_bytes() == drawn
    first.unlink()
    assert previews.cached_card(card).read_bytes() == drawn
    assert not list(previews.CACHE.glob("*.tmp"))


@pytest.mark.timeout(600)
def test_a_build_without_the_caches_makes_the_same_site(
    built_site: Path, site_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The site of the test run (its caches warm or cold) against one built
    with every build cache off: the same files, byte for byte."""
    from tools.build import build_site

    monkeypatch.setenv(build_cache.SWITCH, "0")
    fresh = tmp_path / "site"
    build_site(fresh, site_url=site_url, check=True)

    def files(site: Path) -> dict[str, bytes]:
        return {
            p.relative_to(site).as_posix(): p.read_bytes()
            for p in sorted(site.rglob("*"))
            if p.is_file()
        }

    cached, computed = files(built_site), files(fresh)
    assert sorted(cached) == sorted(computed)
    differ = [name for name in computed if cached[name] != computed[name]]
    assert not differ, f"cached build differs in {differ[:10]}"


@pytest.mark.parametrize("worker", [True, False], ids=["in-a-worker", "in-the-build"])
def test_a_new_card_is_drawn_and_copied_into_the_site(
    worker: bool, cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A card not drawn before is drawn in a worker process, or in the build's
    own process when the worker could not import this module (a bare
    ``properdocs build``), and lands in the site either way."""
    if not worker:
        monkeypatch.setattr(previews, "_importable", lambda: None)
    page = SimpleNamespace(
        meta={"title": "A page", "description": "What it is about."},
        title="A page",
        parent=None,
        file=SimpleNamespace(src_uri="topic/page.md"),
    )
    config = {"site_name": "Site", "site_dir": str(tmp_path / "site")}
    previews.on_pre_build(config)
    previews.on_page_context({}, page, config, None)
    assert bool(previews._drawing) is worker
    previews.on_post_build(config)
    card = tmp_path / "site" / previews.preview_path("topic/page.md")
    assert card.read_bytes().endswith(previews.PNG_END)
    assert (
        card.read_bytes()
        == previews.cached_card(previews.card_for(page, config)).read_bytes()
    )
