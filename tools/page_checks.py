"""The house rules for pages, checked on every build and by the site tests.

A page breaks a rule when:

* its front matter is not valid YAML, or lacks a ``title`` or ``description``;
* a heading has no explicit id (``## Title { #id }``): ids are public, people
  paste them into wikis, so they must not change when the wording does;
* a fenced code block is neither an include of a tested file, nor output
  (``text``), a shell session (``console``) or a diagram (``mermaid``);
* it includes a snippet file or section that does not exist, or a file of
  snippets/support/ (the harness of demos and tests, not a pattern);
* it is a pattern page without the sections every pattern page has, or a topic
  overview without its pattern list and decision guide.

MkDocs runs this module as a hook (``hooks:`` in mkdocs.yml): each problem is
logged as a warning naming the file and line, and ``--strict`` turns warnings
into a failed build. The tests in tests/site import the same functions.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SUPPORT = ROOT / "snippets" / "support"

TOPICS = (
    "build-optimization",
    "code-splitting",
    "lazy-loading",
    "container-orchestration",
    "message-queues",
    "webhook-design",
)
PATTERN_SECTIONS = (
    "problem",
    "see-it-break",
    "pattern",
    "implementation",
    "trade-offs",
    "when-not-to-use",
    "related",
    "sources",
    "api",
)
TOPIC_SECTIONS = ("patterns", "decision-guide")

# Fences that hold no code to test: output, shell sessions, diagrams.
UNTESTED_KINDS = {"text": "output", "console": "shell", "mermaid": "diagram"}

FENCE_OPEN = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<info>.*)$")
HEADING = re.compile(r"^(?P<level>#{1,6})\s+(?P<text>.*?)\s*$")
HEADING_ID = re.compile(r"\{\s*[^}]*#(?P<id>[A-Za-z0-9_.:-]+)[^}]*\}\s*$")
INCLUDE = re.compile(r"""^\s*-{1,}8<-{1,}\s+(?P<q>["'])(?P<target>[^"']+)(?P=q)\s*$""")
SECTION_START = "# --8<-- [start:{}]"
SECTION_END = "# --8<-- [end:{}]"
# The comment that marks a section, by the included file's suffix.
COMMENT = {".js": "//", ".mjs": "//", ".ts": "//"}


@dataclass(frozen=True)
class Problem:
    """One broken rule, located at a file and line."""

    path: Path
    line: int
    message: str

    def __str__(self) -> str:
        try:
            where = self.path.relative_to(ROOT)
        except ValueError:
            where = self.path
        return f"{where}:{self.line}: {self.message}"


@dataclass
class Fence:
    """A fenced code block: its first line, its info string and its body."""

    line: int
    lang: str
    info: str
    body: list[str] = field(default_factory=list)

    @property
    def includes(self) -> list[str]:
        return [m["target"] for b in self.body if (m := INCLUDE.match(b))]

    @property
    def only_includes(self) -> bool:
        lines = [b for b in self.body if b.strip()]
        return bool(lines) and all(INCLUDE.match(b) for b in lines)


# --------------------------------------------------------------------------- #
# Reading a page
# --------------------------------------------------------------------------- #


def split_front_matter(
    path: Path, text: str
) -> tuple[dict[str, Any], int, list[Problem]]:
    """Return the front matter, the line where the body starts, and problems."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        return {}, 1, [Problem(path, 1, "no front matter: start with '---'")]
    try:
        end = next(i for i, line in enumerate(lines[1:], 1) if line.strip() == "---")
    except StopIteration:
        return {}, 1, [Problem(path, 1, "front matter is not closed by '---'")]
    try:
        data = yaml.safe_load("\n".join(lines[1:end])) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 2 if mark is not None else 1
        reason = getattr(error, "problem", None) or str(error)
        return (
            {},
            end + 2,
            [Problem(path, line, f"front matter is not valid YAML: {reason}")],
        )
    if not isinstance(data, dict):
        return {}, end + 2, [Problem(path, 2, "front matter must be a mapping")]
    return data, end + 2, []


def iter_fences(lines: list[str]) -> Iterator[Fence]:
    """Yield every fenced block; ``line`` numbers count from 1."""
    i = 0
    while i < len(lines):
        opened = FENCE_OPEN.match(lines[i])
        if not opened:
            i += 1
            continue
        fence, info = opened["fence"], opened["info"].strip()
        lang = info.split()[0].lstrip(".").lower() if info else ""
        lang = lang.split("{")[0]
        block = Fence(line=i + 1, lang=lang, info=info)
        i += 1
        close = re.compile(rf"^\s*{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        while i < len(lines) and not close.match(lines[i]):
            block.body.append(lines[i])
            i += 1
        i += 1  # the closing fence
        yield block


def outside_fences(lines: list[str]) -> Iterator[tuple[int, str]]:
    """Yield (line number, text) of every line that is not inside a fence."""
    inside: re.Pattern[str] | None = None
    for number, line in enumerate(lines, 1):
        if inside is not None:
            if inside.match(line):
                inside = None
            continue
        opened = FENCE_OPEN.match(line)
        if opened:
            fence = opened["fence"]
            inside = re.compile(rf"^\s*{re.escape(fence[0])}{{{len(fence)},}}\s*$")
            continue
        yield number, line


def heading_ids(lines: list[str]) -> list[tuple[int, int, str | None]]:
    """(line, level, explicit id or None) for every Markdown heading."""
    found = []
    for number, line in outside_fences(lines):
        heading = HEADING.match(line)
        if heading:
            explicit = HEADING_ID.search(heading["text"])
            found.append((number, len(heading["level"]), explicit and explicit["id"]))
    return found


# --------------------------------------------------------------------------- #
# Snippet references
# --------------------------------------------------------------------------- #


def resolve_include(target: str) -> tuple[Path, str | None]:
    """``"snippets/x.py:section"`` → (path, section)."""
    path, _, section = target.partition(":")
    if section and not re.fullmatch(r"[\w-]+", section):
        path, section = target, ""  # a colon that is part of the path
    return ROOT / path, section or None


def include_problem(target: str) -> str | None:
    """Why an include target is broken, or None when it resolves."""
    path, section = resolve_include(target)
    if not path.is_file():
        return f"snippet file {target.partition(':')[0]!r} does not exist"
    if not path.resolve().is_relative_to(ROOT / "snippets"):
        return f"includes must come from snippets/, not {target!r}"
    if path.resolve().is_relative_to(SUPPORT):
        return (
            f"pages may not include {target.partition(':')[0]!r}: snippets/support/ "
            "is the harness of demos and tests, not the pattern; "
            "include the pattern's own module"
        )
    if section is not None:
        text = path.read_text()
        comment = COMMENT.get(path.suffix, "#")
        start, end = SECTION_START.format(section), SECTION_END.format(section)
        start, end = (comment + m.removeprefix("#") for m in (start, end))
        if start not in text:
            return f"section {section!r} is not in {path.relative_to(ROOT)}"
        if end not in text:
            return f"section {section!r} in {path.relative_to(ROOT)} has no end marker"
    return None


# --------------------------------------------------------------------------- #
# The rules
# --------------------------------------------------------------------------- #


def page_kind(path: Path) -> str:
    """'pattern', 'topic', or 'other', from where the page sits in docs/."""
    try:
        parts = path.resolve().relative_to(DOCS.resolve()).parts
    except ValueError:
        return "other"
    if len(parts) == 2 and parts[0] in TOPICS:
        return "topic" if parts[1] == "index.md" else "pattern"
    return "other"


def check_page(path: Path, text: str | None = None) -> list[Problem]:
    """Every problem of one page, in line order."""
    text = path.read_text() if text is None else text
    lines = text.splitlines()
    meta, _, problems = split_front_matter(path, text)

    if not problems:
        for key in ("title", "description"):
            value = meta.get(key)
            if not isinstance(value, str) or not value.strip():
                problems.append(Problem(path, 1, f"front matter has no {key!r}"))
        description = meta.get("description")
        if isinstance(description, str) and '"' in description:
            # The theme writes it into <meta name="description" content="...">
            # as it is: a double quote ends the attribute there.
            problems.append(
                Problem(path, 1, "description has a double quote: use single quotes")
            )
        if isinstance(description, str) and not 40 <= len(description) <= 300:
            problems.append(
                Problem(
                    path,
                    1,
                    f"description should be 40-300 characters, not {len(description)}",
                )
            )

    for number, _level, explicit in heading_ids(lines):
        if explicit is None:
            problems.append(
                Problem(path, number, "heading has no explicit id: add { #some-id }")
            )

    for fence in iter_fences(lines):
        for target in fence.includes:
            reason = include_problem(target)
            if reason:
                problems.append(Problem(path, fence.line, reason))
        if fence.lang == "mermaid":
            for offset, body_line in enumerate(fence.body, 1):
                if ";" in body_line and not body_line.strip().startswith("%%"):
                    problems.append(
                        Problem(
                            path,
                            fence.line + offset,
                            "';' ends a statement in a mermaid diagram; use a comma",
                        )
                    )
        if fence.lang in UNTESTED_KINDS:
            continue
        if not fence.only_includes:
            kind = fence.lang or "a block without a language"
            problems.append(
                Problem(
                    path,
                    fence.line,
                    f"code block ({kind}) is not an include of a tested file; "
                    "put the code in snippets/ and include a section of it, "
                    "or mark the block text, console or mermaid",
                )
            )
        if "hl_lines" in fence.info:
            problems.append(
                Problem(
                    path,
                    fence.line,
                    "hl_lines drift when code changes; "
                    "include a smaller named section instead",
                )
            )

    for number, line in outside_fences(lines):
        included = INCLUDE.match(line)
        if included:
            reason = include_problem(included["target"])
            if reason:
                problems.append(Problem(path, number, reason))

    required = {"pattern": PATTERN_SECTIONS, "topic": TOPIC_SECTIONS}.get(
        page_kind(path), ()
    )
    present = [(n, i) for n, level, i in heading_ids(lines) if level == 2 and i]
    order = [i for _, i in present]
    missing = [section for section in required if section not in order]
    for section in missing:
        problems.append(Problem(path, 1, f"missing section with id #{section}"))
    if not missing:
        positions = [order.index(section) for section in required]
        if positions != sorted(positions):
            problems.append(
                Problem(
                    path,
                    1,
                    "sections out of order; expected "
                    + ", ".join(f"#{s}" for s in required),
                )
            )
    return sorted(problems, key=lambda p: p.line)


# --------------------------------------------------------------------------- #
# The MkDocs hook
# --------------------------------------------------------------------------- #

log = logging.getLogger("mkdocs.hooks.page_checks")


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    """Log each problem of the page as a warning; --strict fails the build."""
    path = Path(page.file.abs_src_path)
    for problem in check_page(path):
        log.warning(str(problem))
    return markdown
