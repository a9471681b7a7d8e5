"""Content-addressed caches for the parts of a build that are pure functions.

Three steps of every build give the same output for the same input, and
between two builds almost all of their inputs are the same:

* highlighting a block of code with Pygments (every code block of every page,
  and every signature of the API reference), keyed by the code, the lexer
  and its options, the formatter and its options;
* formatting an API signature with Ruff, which mkdocstrings does by starting
  ``ruff format`` once per signature, keyed by the code, the line length and
  the Ruff configuration the run would read (pyproject.toml);
* reading a page's HTML into sections for the search index (the theme's
  search plugin parses every page with ``html.parser``), keyed by the HTML.

Each result is stored under ``.cache/build/<kind>/`` in a file named by the
SHA-256 of everything the result depends on: the input, the options, the
versions of Python, of the package doing the work and of this module
(``VERSION``). A changed input is a new key, so an entry is never stale; an
entry that cannot be read (missing, cut short, not JSON, not the expected
shape) is a miss, and the result is computed and written again. Entries are
written to a temporary file and renamed into place, so a build that is
stopped, or two builds at once, never leave half an entry.

A fresh clone has no ``.cache``: its first build fills it (and is correct,
only slower). ``CP_BUILD_CACHE=0`` switches the caches off, for a build that
computes everything. MkDocs runs this module as a hook (``hooks:`` in
mkdocs.yml); it wraps the three functions once per process, and the wrappers
read the switch on every call.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "build"
SWITCH = "CP_BUILD_CACHE"
# Bump when what an entry holds, or how it is keyed, changes.
VERSION = "1"
# Set on each wrapped function or class, so that wrapping is done once.
MARK = "_cp_build_cache"

_stats: dict[str, int] = {}


def enabled() -> bool:
    return os.environ.get(SWITCH, "1") != "0"


def version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return ""


def key(kind: str, *parts: Any) -> str:
    """The SHA-256 of ``parts`` (JSON), salted with the kind and the versions."""
    salt = [VERSION, kind, sys.version]
    text = json.dumps([salt, *parts], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def entry(kind: str, digest: str) -> Path:
    return CACHE / kind / digest[:2] / f"{digest}.json"


def load(kind: str, digest: str) -> Any:
    """The stored value, or None when there is none or it cannot be read."""
    try:
        value = json.loads(entry(kind, digest).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        value = None
    _count(kind, "hit" if value is not None else "miss")
    return value


def store(kind: str, digest: str, value: Any) -> None:
    """Write ``value`` whole or not at all (a temporary file, renamed)."""
    path = entry(kind, digest)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(value, out, separators=(",", ":"))
        os.replace(temporary, path)
    except OSError:
        # A cache that cannot be written (a read-only checkout) is no cache.
        return


def _count(kind: str, outcome: str) -> None:
    name = f"{kind}.{outcome}"
    _stats[name] = _stats.get(name, 0) + 1


def stats() -> dict[str, int]:
    """Hits and misses per kind since the process started (for the tests)."""
    return dict(_stats)


def _options(options: dict[str, Any]) -> str | None:
    """Options as stable text, or None if one would not print the same twice."""
    text = repr(sorted(options.items()))
    return None if " at 0x" in text else text


def _path(kind: type) -> str:
    return f"{kind.__module__}.{kind.__qualname__}"


# --------------------------------------------------------------------------- #
# Pygments, as pymdownx.highlight calls it
# --------------------------------------------------------------------------- #


def cached_highlight(highlight: Callable[..., str]) -> Callable[..., str]:
    """``pygments.highlight(code, lexer, formatter)``, cached."""
    if getattr(highlight, MARK, False):
        return highlight
    versions = [version("pygments"), version("pymdown-extensions")]

    def wrapper(code: str, lexer: Any, formatter: Any, outfile: Any = None) -> Any:
        lexed = _options(getattr(lexer, "options", {}))
        formats = _options(getattr(formatter, "options", {}))
        if outfile is not None or lexed is None or formats is None or not enabled():
            return highlight(code, lexer, formatter, outfile)
        parts = [_path(type(lexer)), lexed, _path(type(formatter)), formats]
        digest = key("highlight", versions, parts, code)
        found = load("highlight", digest)
        if isinstance(found, str):
            return found
        result = highlight(code, lexer, formatter)
        if isinstance(result, str):
            store("highlight", digest, result)
        return result

    setattr(wrapper, MARK, True)
    return wrapper


# --------------------------------------------------------------------------- #
# Ruff, as mkdocstrings-python formats separate signatures
# --------------------------------------------------------------------------- #


def _formatter_config() -> list[str]:
    """The configuration files a formatter run in the working directory reads."""
    found = []
    for name in ("pyproject.toml", "ruff.toml", ".ruff.toml"):
        path = Path.cwd() / name
        found.append(path.read_text(encoding="utf-8") if path.is_file() else "")
    return found


def cached_formatter(
    get_formatter: Callable[[], Callable[[str, int], str]],
) -> Callable[[], Callable[[str, int], str]]:
    """mkdocstrings-python's ``_get_formatter``, whose formatter is cached."""
    if getattr(get_formatter, MARK, False):
        return get_formatter
    made: list[Callable[[str, int], str]] = []

    def wrapper() -> Callable[[str, int], str]:
        if made:
            return made[0]
        format_code = get_formatter()
        # The formatter mkdocstrings picks: Black if installed, else Ruff.
        tools = [version("black"), version("ruff"), _formatter_config()]

        def formatter(code: str, line_length: int) -> str:
            if not enabled():
                return format_code(code, line_length)
            digest = key("signature", tools, line_length, code)
            found = load("signature", digest)
            if isinstance(found, str):
                return found
            result = format_code(code, line_length)
            store("signature", digest, result)
            return result

        made.append(formatter)
        return formatter

    setattr(wrapper, MARK, True)
    return wrapper


# --------------------------------------------------------------------------- #
# The search plugin's HTML parser
# --------------------------------------------------------------------------- #


def cached_parser(parser: type[Any], element: type[Any], section: type[Any]) -> type:
    """The search plugin's ``Parser``, whose sections are cached by the HTML."""
    if getattr(parser, MARK, False):
        return parser
    material = version("mkdocs-material")

    def dump(found: Any) -> dict[str, Any]:
        return {
            "tag": found.el.tag,
            "attrs": found.el.attrs,
            "depth": found.depth,
            "text": found.text,
            "title": found.title,
            "id": found.id,
        }

    def restore(data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("attrs"), dict):
            raise ValueError("not a section")
        if not all(isinstance(data.get(name), list) for name in ("text", "title")):
            raise ValueError("not a section")
        made = section(element(data["tag"], data["attrs"]), data["depth"])
        made.text, made.title, made.id = data["text"], data["title"], data["id"]
        return made

    class Cached(parser):  # type: ignore[misc, valid-type]
        """Collects the HTML, then parses it, or reads its sections from the cache."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._cp_chunks: list[str] = []

        def feed(self, data: str) -> None:
            self._cp_chunks.append(data)

        def close(self) -> None:
            html = "".join(self._cp_chunks)
            self._cp_chunks = []
            if not enabled():
                super().feed(html)
                super().close()
                return
            digest = key("search", material, html)
            found = load("search", digest)
            if isinstance(found, list):
                try:
                    self.data = [restore(data) for data in found]
                    return
                except (KeyError, TypeError, ValueError):
                    pass
            super().feed(html)
            super().close()
            store("search", digest, [dump(found) for found in self.data])

    setattr(Cached, MARK, True)
    Cached.__name__ = Cached.__qualname__ = parser.__name__
    return Cached


# --------------------------------------------------------------------------- #
# The MkDocs hook
# --------------------------------------------------------------------------- #


def install() -> None:
    """Wrap the three functions (once per process; later calls do nothing)."""
    import pymdownx.highlight

    pymdownx.highlight.highlight = cached_highlight(pymdownx.highlight.highlight)  # type: ignore[attr-defined]
    try:
        from mkdocstrings_handlers.python._internal import rendering
    except ImportError:
        pass
    else:
        if hasattr(rendering, "_get_formatter"):
            rendering._get_formatter = cached_formatter(rendering._get_formatter)
    try:
        from material.plugins.search import plugin as search
    except ImportError:
        pass
    else:
        search.Parser = cached_parser(search.Parser, search.Element, search.Section)  # type: ignore[misc]


def on_config(config: Any) -> Any:
    install()
    return config
