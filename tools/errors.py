"""Error messages captured by the tests, and the Errors page built from them.

A see-it-break test that provokes an error from a real component records the
message with the ``error_record`` fixture (tests/conftest.py). Each pattern's
records are one file, ``snippets/<topic>/errors/<pattern>.yml``, committed
like output files and compared on every run: a message that changes fails the
test with both texts; ``UPDATE_OUTPUT=1`` rewrites the record instead.

A message is stored normalised (``normalise``): what changes from run to run
(numbers, hashes, uuids, addresses, loopback hosts and ports, absolute paths,
timestamps) becomes a placeholder, so the record is the same on every run and
every Python. The component's version is read from the component when the
message is recorded; it is stored, not compared (a new server version that
prints the same message passes).

A page *quotes an error* when an inline code span outside code blocks
(``QUOTE``) starts with

* an exception name, dotted or not, in CamelCase with at least two humps,
  followed by ``: `` and a message (`` `KeyError: 'csv'` ``,
  `` `StreamLostError: ("Stream connection lost: …")` ``);
* an AMQP reply code, ``UPPER_CASE - message``
  (`` `PRECONDITION_FAILED - unknown delivery tag` ``);
* a Redis error code, ``NOGROUP``, ``BUSYGROUP``, ``WRONGTYPE`` or
  ``NOSCRIPT`` followed by a message;
* a container status, ``Exited (137)``;
* a compiler diagnostic, ``file:line:column: error: message`` (or
  ``fatal error:``).

Each such quote must be contained in a record (``unrecorded_quotes``): after
normalising both, the quote is a part of a recorded message, ``…`` or ``...``
in the quote standing for any text. tests/test_errors.py checks it.

As a MkDocs hook (``hooks:`` in mkdocs.yml) this module writes the Errors page:
docs/errors.md holds the prose and the marker ``INDEX_MARKER``, which the hook
replaces with every record, grouped by component.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
ERRORS_PAGE = "errors.md"
INDEX_MARKER = "<!-- the recorded errors -->"
UPDATE = "UPDATE_OUTPUT=1"

__all__ = [
    "ErrorRecorder",
    "Record",
    "exception_text",
    "is_instance",
    "matches",
    "normalise",
    "quotes",
    "record_file",
    "records",
    "render_index",
    "unrecorded_quotes",
]


# --------------------------------------------------------------------------- #
# Normalising a message
# --------------------------------------------------------------------------- #

# In this order: a later rule must not see what an earlier one replaced.
RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), placeholder)
    for pattern, placeholder in (
        (
            r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
            r"[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b",
            "<uuid>",
        ),
        (
            r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?"
            r"(?: ?[+-]\d{2}:?\d{2}|Z)?",
            "<time>",
        ),
        (r"\b0x[0-9a-fA-F]+\b", "<addr>"),
        (r"(?:127\.0\.0\.1|localhost|\[::1\])(?::\d+)?", "<host>"),
        # An absolute path: after a space, a quote, a bracket or '=' only, so
        # that the path of a URL stays (its host is a placeholder already).
        (r"(?:(?<=[\s'\"(\[=:])|^)(?:/[\w.@+~-]+)+/?", "<path>"),
        # A bundler's content hash in a file name: Vite's (-, eight of
        # [A-Za-z0-9_-]) and webpack's (., eight hex digits).
        (r"-[A-Za-z0-9_-]{8}(?=\.(?:m?js|css)\b)", "-<hash>"),
        (r"\.[0-9a-f]{8}(?=\.(?:m?js|css)\b)", ".<hash>"),
        # A hash: six or more hex digits with a digit and a letter among them.
        (
            r"(?<![0-9A-Za-z])(?=[0-9a-f]*[0-9])(?=[0-9a-f]*[a-f])[0-9a-f]{6,}"
            r"(?![0-9A-Za-z])",
            "<hash>",
        ),
        (r"(?<![A-Za-z.<\d])\d+(?:\.\d+)*(?![\w>])", "<n>"),
    )
)


def normalise(text: str) -> str:
    """``text`` with what changes between runs replaced by placeholders.

    >>> normalise("ChunkLoadError: Loading chunk 954 failed.")
    'ChunkLoadError: Loading chunk <n> failed.'
    >>> normalise("[2026-12-07 04:40:01 +0000] [4242] [CRITICAL] WORKER TIMEOUT")
    '[<time>] [<n>] [CRITICAL] WORKER TIMEOUT'
    """
    text = "\n".join(line.rstrip() for line in text.strip().splitlines())
    for pattern, placeholder in RULES:
        text = pattern.sub(placeholder, text)
    return text


def exception_text(error: BaseException) -> str:
    """The last line of the traceback Python prints for ``error``."""
    kind = type(error)
    module = kind.__module__
    name = kind.__qualname__
    if module not in {"builtins", "__main__"}:
        name = f"{module}.{name}"
    message = str(error)
    return f"{name}: {message}" if message else name


# --------------------------------------------------------------------------- #
# Records
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Record:
    """One recorded message, and where it is explained."""

    id: str  # unique in the pattern; with it, the entry's anchor on the page
    message: str  # normalised
    component: str
    version: str
    page: str  # relative to docs/, e.g. "message-queues/competing-consumers.md"
    section: str  # a heading id of that page
    test: str  # the test that records it: "tests/<topic>/test_<x>.py::<name>"
    file: Path

    @property
    def anchor(self) -> str:
        return f"{Path(self.page).stem}-{self.id}"

    @property
    def first_line(self) -> str:
        return self.message.splitlines()[0]


def record_file(topic: str, pattern: str) -> Path:
    """``snippets/<topic>/errors/<pattern>.yml``, topic and pattern underscored."""
    return ROOT / "snippets" / topic / "errors" / f"{pattern}.yml"


def read(path: Path) -> dict[str, dict[str, str]]:
    """The entries of one record file, by id (empty if there is none)."""
    if not path.is_file():
        return {}
    data = yaml.safe_load(path.read_text()) or {}
    entries: dict[str, dict[str, str]] = data.get("errors", {})
    return entries


HEADER = """\
# Error messages recorded by {test}, normalised
# (tools/errors.py). Compared on every run; rewrite with UPDATE_OUTPUT=1.
"""


class _Dumper(yaml.SafeDumper):  # type: ignore[misc]
    """Multi-line messages as literal blocks, as they were printed."""


def _text(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _text)


def write(path: Path, entries: dict[str, dict[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    test = Path("tests") / path.parent.parent.name / f"test_{path.stem}.py"
    body = yaml.dump(
        {"errors": dict(sorted(entries.items()))},
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        width=1000,
    )
    path.write_text(HEADER.format(test=test.as_posix()) + body)


def records() -> list[Record]:
    """Every record of every pattern, in file and id order."""
    found = []
    for path in sorted((ROOT / "snippets").glob("*/errors/*.yml")):
        for key, entry in read(path).items():
            found.append(
                Record(
                    id=key,
                    message=entry["message"],
                    component=entry["component"],
                    version=str(entry["version"]),
                    page=entry["page"],
                    section=entry["section"],
                    test=entry["test"],
                    file=path,
                )
            )
    return found


class ErrorRecorder:
    """Record, or compare with the record, one test's error messages.

    ``recorder(error, id=..., component=..., version=...)``: ``error`` is the
    exception the component raised, or the exact line its log or console
    printed. Without ``UPDATE_OUTPUT=1`` a missing or different record raises
    ``AssertionError``; with it the record is written. Only the test that
    calls it touches the file (a skipped test records nothing, deletes nothing).
    """

    def __init__(self, topic: str, pattern: str, test: str, update: bool) -> None:
        self.path = record_file(topic, pattern)
        self.page = f"{topic.replace('_', '-')}/{pattern.replace('_', '-')}.md"
        self.test = test
        self.update = update

    def __call__(
        self,
        error: BaseException | str,
        *,
        id: str,
        component: str,
        version: str,
        section: str = "see-it-break",
        names: dict[str, str] | None = None,
    ) -> str:
        """Record ``error``; ``names`` maps names the test made up (a unique
        module or queue name) to what the record shows instead."""
        text = error if isinstance(error, str) else exception_text(error)
        for made, shown in sorted((names or {}).items(), key=lambda i: -len(i[0])):
            text = text.replace(made, shown)
        entry = {
            "message": normalise(text),
            "component": component,
            "version": str(version),
            "page": self.page,
            "section": section,
            "test": self.test,
        }
        with _locked():
            entries = read(self.path)
            current = entries.get(id)
            if self.update:
                if current != entry:
                    entries[id] = entry
                    write(self.path, entries)
                return entry["message"]
        where = f"{self.path.relative_to(ROOT)} [{id}]"
        assert current is not None, (
            f"no record {where} of the message {entry['message']!r}; "
            f"run this test with {UPDATE} to write it, review and commit it"
        )
        compared = ("message", "component", "page", "section", "test")
        changed = [key for key in compared if current.get(key) != entry[key]]
        assert not changed, (
            f"{where} no longer holds what this run produced ({', '.join(changed)}):\n"
            + "\n".join(
                f"  {key}: recorded {current.get(key)!r}\n  {' ' * len(key)}  "
                f"now      {entry[key]!r}"
                for key in changed
            )
            + f"\nif the change is intended, rerun with {UPDATE} and review the diff"
        )
        return entry["message"]


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """One writer at a time across test processes (xdist, the Python matrix)."""
    lock = ROOT / ".reports" / "errors.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --------------------------------------------------------------------------- #
# Quotes on pages
# --------------------------------------------------------------------------- #

SPAN = re.compile(r"(?<!`)`(?!`)((?:[^`\n]|\n(?![ \t]*\n))+?)`(?!`)")
QUOTE = re.compile(
    r"^(?:"
    r"(?:[a-z_]\w*\.)*_?[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]*)+: \S"  # Name: message
    r"|[A-Z]+(?:_[A-Z]+)+ - \S"  # AMQP reply code - text
    r"|(?:NOGROUP|BUSYGROUP|WRONGTYPE|NOSCRIPT) \S"  # Redis error reply
    r"|Exited \(\d+\)"  # container status
    r"|[\w./-]+:\d+:\d+: (?:fatal )?error: \S"  # a compiler's diagnostic
    r")"
)
ELLIPSIS = re.compile(r"…|\.\.\.")


def _without_fences(text: str) -> str:
    """``text`` with the lines of fenced blocks blanked (line numbers kept)."""
    lines, fence = [], ""
    for line in text.splitlines():
        stripped = line.lstrip()
        if not fence and stripped.startswith(("```", "~~~")):
            fence = stripped[:3]
            lines.append("")
        elif fence:
            if stripped.startswith(fence):
                fence = ""
            lines.append("")
        else:
            lines.append(line)
    return "\n".join(lines)


def quotes(text: str) -> Iterator[tuple[int, str]]:
    """(line, quote) for every error quoted in a page's Markdown."""
    body = _without_fences(text)
    for span in SPAN.finditer(body):
        quote = " ".join(span[1].split())
        if QUOTE.match(quote):
            yield body.count("\n", 0, span.start()) + 1, quote


def _flat(text: str) -> str:
    return " ".join(text.split())


def matches(quote: str, message: str) -> bool:
    """Whether the quoted text is part of the normalised message."""
    parts = [normalise(part) for part in ELLIPSIS.split(_flat(quote))]
    pattern = ".*?".join(re.escape(_flat(part)) for part in parts)
    return re.search(pattern, _flat(message)) is not None


PLACEHOLDER = re.compile(r"<[a-z]+>")


def is_instance(text: str, message: str) -> bool:
    """Whether ``text`` is ``message`` with a concrete value for each placeholder
    (a reader's paste of the recorded message)."""
    parts = PLACEHOLDER.split(_flat(message))
    pattern = ".+?".join(re.escape(part) for part in parts)
    return re.fullmatch(pattern, _flat(text)) is not None and not PLACEHOLDER.search(
        text
    )


def unrecorded_quotes(pages: list[Path] | None = None) -> list[str]:
    """``docs/x.md:LINE: `quote` …`` for every quote no record contains."""
    messages = [record.message for record in records()]
    problems = []
    for page in pages if pages is not None else sorted(DOCS.rglob("*.md")):
        for line, quote in quotes(page.read_text()):
            if not any(matches(quote, message) for message in messages):
                where = page.relative_to(ROOT) if page.is_relative_to(ROOT) else page
                problems.append(f"{where}:{line}: `{quote}`")
    return problems


HOW_TO_RECORD = """\
A page quotes an error only as a test run printed it (tools/errors.py defines
what counts as a quote). To record one, in the test that provokes it:

    def test_the_hazard(error_record):  # the fixture, from tests/conftest.py
        ...
        error_record(caught.value, id="short-slug", section="see-it-break",
                     component="pika", version=pika.__version__)

(pass the exception, or the exact line a log or the console showed), then run
`UPDATE_OUTPUT=1 .venv/bin/python -m pytest tests/<topic>/test_<pattern>.py`
and commit snippets/<topic>/errors/<pattern>.yml with the test; add the
message's first line, pasted with concrete values, to
tests/site/search_queries.yml for the page; the test file changed, so refresh
the pattern's stamp: `python3 tests/python_matrix.py
tests/<topic>/test_<pattern>.py tests/test_outputs.py -k <pattern>`. Or quote
the text as a record has it (write … for a part that changes)."""


# --------------------------------------------------------------------------- #
# The Errors page (MkDocs hook)
# --------------------------------------------------------------------------- #


def _code(text: str) -> str:
    ticks = "``" if "`" in text else "`"
    pad = " " if ticks == "``" else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def render_index(found: list[Record], titles: dict[str, str], depth: str) -> str:
    """The Markdown of every record, grouped by component.

    ``titles`` maps a page (relative to docs/) to its title; ``depth`` is the
    path from the Errors page back to docs/ (``""`` for docs/errors.md).
    """
    by_component: dict[str, list[Record]] = {}
    for record in found:
        by_component.setdefault(record.component, []).append(record)
    out = []
    for component in sorted(by_component, key=str.lower):
        out.append(f"## {component} {{ #{_slug(component)} }}\n")
        entries = sorted(by_component[component], key=lambda r: r.message.lower())
        for record in entries:
            # A title is plain text (`__getattr__` is not bold).
            title = re.sub(
                r"([\\`*_\[\]<>])", r"\\\1", titles.get(record.page, record.page)
            )
            heading = record.first_line
            if len(heading) > 72:  # cut at a space, not inside a placeholder
                heading = heading[: heading.rfind(" ", 0, 70)] + " …"
            out.append(f"### {_code(heading)} {{ #{record.anchor} }}\n")
            if heading != record.message:
                out.append("```text")
                out.append(record.message)
                out.append("```\n")
            out.append(
                f"{component} {record.version}. Explained in "
                f"[{title}]({depth}{record.page}#{record.section}). "
                f"Recorded by `{record.test}`.\n"
            )
    return "\n".join(out)


log = logging.getLogger("mkdocs.hooks.errors")
_TITLES: dict[str, str] = {}


def on_page_markdown(markdown: str, page: Any, files: Any, **_: Any) -> str:
    """Replace the marker of docs/errors.md with every record."""
    if page.file.src_uri != ERRORS_PAGE:
        return markdown
    if INDEX_MARKER not in markdown:
        log.warning(f"docs/{ERRORS_PAGE} has lost its marker {INDEX_MARKER}")
        return markdown
    found = records()
    explained = {record.page for record in found}
    titles = {}
    for file in files.documentation_pages():
        if file.src_uri not in explained:
            continue
        try:
            meta = yaml.safe_load(_front_matter(Path(file.abs_src_path).read_text()))
        except yaml.YAMLError:
            meta = None  # the page rules report it, with the file and line
        title = meta.get("title") if isinstance(meta, dict) else None
        titles[file.src_uri] = title if isinstance(title, str) else file.src_uri
    return markdown.replace(INDEX_MARKER, render_index(found, titles, ""))


def _front_matter(text: str) -> str:
    if not text.startswith("---\n"):
        return ""
    return text[4:].partition("\n---")[0]
