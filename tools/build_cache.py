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
  Before it is parsed, highlighted code loses its token ``<span>`` tags,
  which are most of a page's tags and add nothing to the index
  (:func:`without_token_spans`).

The book's pre-render keeps its drawn diagrams here too, by the same
:func:`key`, :func:`load` and :func:`store` (tools/pdf/prerender.py).

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

import functools
import hashlib
import importlib
import importlib.metadata
import json
import os
import re
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


@functools.cache
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
    _write(entry(kind, digest), json.dumps(value, separators=(",", ":")).encode())


def _write(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(handle, "wb") as out:
            out.write(data)
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
# Code blocks, as pymdownx.highlight highlights them with Pygments
# --------------------------------------------------------------------------- #


def cached_highlight(highlight: Callable[..., Any]) -> Callable[..., Any]:
    """``pymdownx.highlight.Highlight.highlight``, cached for code blocks.

    The key is the code, the call's arguments and every setting of the
    highlighter (the instance's attributes but the Markdown instance), so
    that the blocks of a page and the signatures of the API reference (whose
    highlighter is mkdocstrings' subclass) each get their own entries. Inline
    code (an element, not text) and HTML titles (stored in the Markdown
    instance) are not cached.
    """
    if getattr(highlight, MARK, False):
        return highlight
    versions = [version("pygments"), version("pymdown-extensions")]

    def wrapper(self: Any, src: str, *args: Any, **kwargs: Any) -> Any:
        settings = {k: v for k, v in vars(self).items() if k != "md"}
        shown = _options(settings)
        call = _options({"args": args, **kwargs})
        if (
            not enabled()
            or kwargs.get("inline")
            or (len(args) > 6 and args[6])  # inline, passed by position
            or getattr(self, "title_mode", "text") == "html"
            or shown is None
            or call is None
        ):
            return highlight(self, src, *args, **kwargs)
        digest = key("highlight", versions, _path(type(self)), shown, call, src)
        found = load("highlight", digest)
        if isinstance(found, str):
            return found
        result = highlight(self, src, *args, **kwargs)
        if isinstance(result, str):
            store("highlight", digest, result)
        return result

    setattr(wrapper, MARK, True)
    return wrapper


# --------------------------------------------------------------------------- #
# Compiled templates (Jinja's bytecode cache, on disk)
# --------------------------------------------------------------------------- #


def _environment(environment: Any) -> str:
    """The settings of a Jinja environment that change how a template compiles."""
    escape = environment.autoescape
    if callable(escape):
        cells = [c.cell_contents for c in getattr(escape, "__closure__", None) or ()]
        escape = [_path(escape) if isinstance(escape, type) else escape.__qualname__]
        escape.append(repr(cells))
    names = [
        "block_start_string",
        "block_end_string",
        "variable_start_string",
        "variable_end_string",
        "comment_start_string",
        "comment_end_string",
        "line_statement_prefix",
        "line_comment_prefix",
        "trim_blocks",
        "lstrip_blocks",
        "newline_sequence",
        "keep_trailing_newline",
        "optimized",
    ]
    settings = [getattr(environment, name, None) for name in names]
    extensions = sorted(environment.extensions)
    return repr([settings, extensions, escape, type(environment).__qualname__])


def template_cache() -> Any:
    """A Jinja bytecode cache under .cache/build/templates, kept in memory too."""
    import jinja2

    class Compiled(jinja2.BytecodeCache):
        def __init__(self) -> None:
            self.memory: dict[str, bytes] = {}

        def name(self, bucket: Any) -> str | None:
            settings = _environment(bucket.environment)
            if " at 0x" in settings:
                return None
            return key("template", version("jinja2"), settings, bucket.key)

        def load_bytecode(self, bucket: Any) -> None:
            digest = self.name(bucket)
            if digest is None or not enabled():
                return
            data = self.memory.get(digest)
            if data is None:
                try:
                    data = entry("template", digest).with_suffix(".bin").read_bytes()
                except OSError:
                    _count("template", "miss")
                    return
            # Jinja checks the header and the source's checksum, and starts
            # again from the source when either does not match.
            bucket.bytecode_from_string(data)
            _count("template", "hit" if bucket.code is not None else "miss")

        def dump_bytecode(self, bucket: Any) -> None:
            digest = self.name(bucket)
            if digest is None or not enabled():
                return
            data = bucket.bytecode_to_string()
            self.memory[digest] = data
            path = entry("template", digest).with_suffix(".bin")
            _write(path, data)

    return Compiled()


def _keep_compiled_templates() -> None:
    """Every Jinja environment made from now on without a cache gets this one."""
    import jinja2

    # Marked on the class: tools/dirty.py wraps the same method under serve.
    if getattr(jinja2.Environment, MARK, None) is not None:
        return
    shared = template_cache()
    make = jinja2.Environment.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        make(self, *args, **kwargs)
        if self.bytecode_cache is None:
            self.bytecode_cache = shared

    jinja2.Environment.__init__ = init  # type: ignore[method-assign]
    setattr(jinja2.Environment, MARK, shared)


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


PRE = re.compile(r"<pre\b[^>]*>.*?</pre>", re.S)
TOKEN_SPAN = re.compile(r'<span(?: class="[^"<>]*")?>|</span>')


def without_token_spans(html: str) -> str:
    """``html`` with the ``<span>`` tags of each ``<pre>`` block taken out.

    Pygments wraps each token of highlighted code in ``<span class="...">``;
    the search plugin's parser walks each of them and keeps only their text,
    which a block without them gives it in longer pieces: the sections' text
    joined is the same. A block with a span of any other shape (an ``id``,
    a ``data-`` attribute) is left whole, so that no closing tag loses its
    opening one. About half the parsing time of a page with code.
    """

    def lean(block: re.Match[str]) -> str:
        text = block[0]
        opening = text.count("<span")
        lean, removed = TOKEN_SPAN.subn("", text)
        return lean if removed == opening + text.count("</span>") else text

    return PRE.sub(lean, html)


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

    class Cached(parser):  # type: ignore[misc]
        """Collects the HTML, then parses it, or reads its sections from the cache."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._cp_chunks: list[str] = []

        def feed(self, data: str) -> None:
            self._cp_chunks.append(data)

        def close(self) -> None:
            html = "".join(self._cp_chunks)
            self._cp_chunks = []
            lean = without_token_spans(html)
            if not enabled():
                super().feed(lean)
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
            super().feed(lean)
            super().close()
            store("search", digest, [dump(found) for found in self.data])

    setattr(Cached, MARK, True)
    Cached.__name__ = Cached.__qualname__ = parser.__name__
    return Cached


# --------------------------------------------------------------------------- #
# The MkDocs hook
# --------------------------------------------------------------------------- #


def _module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def install() -> None:
    """Wrap the functions (once per process; later calls do nothing)."""
    _keep_compiled_templates()
    highlight = _module("pymdownx.highlight")
    if highlight is not None:
        highlighter = highlight.Highlight
        highlighter.highlight = cached_highlight(highlighter.highlight)
    rendering = _module("mkdocstrings_handlers.python._internal.rendering")
    if rendering is not None and hasattr(rendering, "_get_formatter"):
        rendering._get_formatter = cached_formatter(rendering._get_formatter)
    search = _module("material.plugins.search.plugin")
    if search is not None:
        search.Parser = cached_parser(search.Parser, search.Element, search.Section)


def on_config(config: Any) -> Any:
    install()
    return config
