""" "Tested on": what each pattern's tests last passed on, stamped on its page.

A full test run records, per Python, which patterns passed and which servers
they talked to (``.reports/tested-on/<X.Y>.json``, written by tests/conftest.py).
``make test-all`` runs the pattern tests on every Python in ``.ci/versions``
and then writes one stamp per pattern, ``tested-on/<topic>/<pattern>.json``::

    python -m tools.tested_on write      # after a green run on every Python

A stamp is keyed by the SHA-256 of the pattern's files (its snippet module or
package and its test module), so a change to either makes the stamp stale;
``tests/test_tested_on.py`` fails on a missing or stale stamp and names the
command above. Stamps are committed like output files: a fresh clone builds
with them, and the build hook below prints each on its pattern page (a stale
or missing stamp is left off the page, and the test fails).

As a MkDocs hook (``hooks:`` in mkdocs.yml) this module only reads stamps.
"""

from __future__ import annotations

import datetime
import hashlib
import html
import json
import logging
import os
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
STAMPS = ROOT / "tested-on"
# CP_TESTED_ON_RECORDS: elsewhere, for a test that runs pytest in pytest.
RECORDS = Path(os.environ.get("CP_TESTED_ON_RECORDS", ROOT / ".reports" / "tested-on"))
VERSIONS_FILE = ROOT / ".ci" / "versions"
REFRESH = "make test-all"
# Where a test's subject runs outside the Python that drives it: the version
# matrix runs those tests on the first Python only (tests/conftest.py).
ENGINES = ("Chromium", "Docker", "Node.js")

log = logging.getLogger("mkdocs.hooks.tested_on")


# --------------------------------------------------------------------------- #
# Patterns and their files
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Pattern:
    """One pattern: ``snippets/<topic>/<name>.py`` or the package ``<name>/``."""

    topic: str
    name: str

    @property
    def key(self) -> str:
        return f"{self.topic}/{self.name}"

    @property
    def page(self) -> Path:
        dashed = self.name.replace("_", "-")
        return ROOT / "docs" / self.topic.replace("_", "-") / f"{dashed}.md"

    @property
    def test(self) -> Path:
        return ROOT / "tests" / self.topic / f"test_{self.name}.py"

    @property
    def stamp(self) -> Path:
        return STAMPS / self.topic / f"{self.name}.json"

    def files(self) -> list[Path]:
        """The snippet module (or every .py and .js of the package) and the test."""
        module = ROOT / "snippets" / self.topic / f"{self.name}.py"
        package = module.with_suffix("")
        # A package's JavaScript, which its tests build and run, counts too.
        code = ("*.py", "*.js") if package.is_dir() else ()
        found = sorted(p for kind in code for p in package.rglob(kind)) or [module]
        return [path for path in [*found, self.test] if path.is_file()]

    def digest(self) -> str:
        """SHA-256 over each file's path and bytes, in a fixed order."""
        digest = hashlib.sha256()
        for path in self.files():
            digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
        return digest.hexdigest()


def patterns() -> list[Pattern]:
    """Every pattern that has a page and a test module."""
    found = []
    for topic in sorted((ROOT / "snippets").iterdir()):
        if not (topic / "__init__.py").is_file() or topic.name == "support":
            continue
        names = {path.stem for path in topic.glob("*.py") if path.stem != "__init__"}
        names |= {
            path.name for path in topic.iterdir() if (path / "__init__.py").is_file()
        }
        for name in sorted(names):
            pattern = Pattern(topic.name, name)
            if pattern.page.is_file() and pattern.test.is_file():
                found.append(pattern)
    return found


def pattern_of_test(path: Path) -> Pattern | None:
    """The pattern ``tests/<topic>/test_<name>.py`` tests, if it is one."""
    if not path.name.startswith("test_") or path.parent.parent != ROOT / "tests":
        return None
    pattern = Pattern(path.parent.name, path.stem.removeprefix("test_"))
    return pattern if pattern.page.is_file() else None


def pattern_of_output(path: Path) -> Pattern:
    """The pattern ``snippets/<topic>/output/<name>.<case>.txt`` is the output of."""
    return Pattern(path.parent.parent.name, path.name.split(".")[0])


# --------------------------------------------------------------------------- #
# .ci/versions: the Pythons and servers CI runs on
# --------------------------------------------------------------------------- #


def ci_versions() -> dict[str, str]:
    """``KEY=VALUE`` lines of .ci/versions (comments and blanks skipped)."""
    values = {}
    for line in VERSIONS_FILE.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def ci_pythons() -> list[str]:
    return ci_versions()["PYTHONS"].split()


# --------------------------------------------------------------------------- #
# Stamps
# --------------------------------------------------------------------------- #


def shown(path: Path) -> str:
    """A path as a message shows it: relative to the repository when inside it."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def read_stamp(pattern: Pattern) -> dict[str, Any] | None:
    if not pattern.stamp.is_file():
        return None
    data: dict[str, Any] = json.loads(pattern.stamp.read_text())
    return data


def stamp_problem(pattern: Pattern) -> str | None:
    """Why the pattern's stamp does not stand for its files, or None."""
    stamp = read_stamp(pattern)
    where = shown(pattern.stamp)
    refresh = f"run `{REFRESH}` (the pattern tests on every Python) to refresh it"
    if stamp is None:
        return f"{where} is missing; {refresh}"
    if stamp.get("sha256") != pattern.digest():
        changed = ", ".join(shown(path) for path in pattern.files())
        return f"{where} is older than {changed}; {refresh}"
    tested = {".".join(version.split(".")[:2]) for version in stamp.get("python", [])}
    # A pattern whose every test runs in Chromium, Node.js or Docker runs on the
    # first Python only (tests/conftest.py, python_independent).
    once = stamp.get("engines_on_python") and len(tested) == 1
    wanted = ci_pythons()[:1] if once else ci_pythons()
    missing = [version for version in wanted if version not in tested]
    if missing:
        return f"{where} lacks Python {', '.join(missing)} (.ci/versions); {refresh}"
    return None


def records() -> Iterator[dict[str, Any]]:
    """The per-Python records of the last runs (.reports/tested-on/*.json)."""
    for path in sorted(RECORDS.glob("*.json")):
        yield json.loads(path.read_text())


def write_stamps(pythons: Iterable[str]) -> list[str]:
    """Write the stamp of every pattern that passed on each of ``pythons``.

    Returns the problems (a pattern not passed on some Python); a stamp whose
    contents would not change (other than the date) is left as it is.
    """
    wanted = list(pythons)
    runs = {".".join(r["python"].split(".")[:2]): r for r in records()}
    problems = [
        f"no record of a full run on Python {version} in {RECORDS.relative_to(ROOT)}"
        for version in wanted
        if version not in runs
    ]
    if problems:
        return problems
    for pattern in patterns():
        digest = pattern.digest()
        python, servers, dates = [], {}, []
        once_on = ""
        for version in wanted:
            run = runs[version]
            result = run["patterns"].get(pattern.key)
            if not result or not result["passed"] or result["sha256"] != digest:
                problems.append(f"{pattern.key}: no green run on Python {version}")
                break
            left = result.get("left_to_first_python", 0)
            if left and version == wanted[0]:
                problems.append(
                    f"{pattern.key}: {left} tests left out on Python {version}, "
                    "the first Python, which runs every test"
                )
                break
            if left:
                once_on = runs[wanted[0]]["patterns"][pattern.key]["python"]
            if result.get("ran", 1) == 0:
                continue  # every test of it runs on the first Python only
            python.append(result.get("python", run["python"]))
            dates.append(result.get("date", run.get("date", "")))
            known = {**run.get("servers", {}), **result.get("servers", {})}
            for label in result["uses"]:
                servers[label] = known.get(label, "?")
        else:
            stamp = {
                "page": pattern.page.relative_to(ROOT).as_posix(),
                "sha256": digest,
                "python": python,
                "servers": dict(sorted(servers.items())),
                "date": max(dates),
            }
            if once_on:  # its Chromium, Node.js and Docker tests: the first only
                stamp["engines_on_python"] = once_on
            old = read_stamp(pattern)
            if old is not None and {**old, "date": stamp["date"]} == stamp:
                continue
            pattern.stamp.parent.mkdir(parents=True, exist_ok=True)
            pattern.stamp.write_text(json.dumps(stamp, indent=2) + "\n")
    return problems


def stamp_line(stamp: dict[str, Any]) -> str:
    """``Tested on Python 3.11.7, 3.12.1 and 3.13.0 with Redis 7.0.15, ...``."""

    def listing(items: list[str]) -> str:
        return (
            items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"
        )

    text = f"Tested on Python {listing(stamp['python'])}"
    servers = [f"{label} {version}" for label, version in stamp["servers"].items()]
    if servers:
        text += f" with {listing(servers)}"
    engines = [label for label in stamp["servers"] if label in ENGINES]
    if engines and stamp.get("engines_on_python") and len(stamp["python"]) > 1:
        # what runs in the browser, the bundler or a container ran once
        text += (
            f" (the {listing(engines)} tests on Python {stamp['engines_on_python']})"
        )
    date = datetime.date.fromisoformat(stamp["date"])
    return f"{text}, {date.day} {date:%B %Y}."


# --------------------------------------------------------------------------- #
# The MkDocs hook
# --------------------------------------------------------------------------- #


# The patterns by their page: found once per build, not once per page.
_by_page: dict[Path, Pattern] = {}


def on_pre_build(**kwargs: Any) -> None:
    _by_page.clear()


def on_page_content(html_text: str, page: Any, **kwargs: Any) -> str:
    """Insert the pattern's stamp under the page's title."""
    if not _by_page:
        for found in patterns():
            _by_page.setdefault(found.page.resolve(), found)
    pattern = _by_page.get(Path(page.file.abs_src_path or "").resolve())
    if pattern is None:
        return html_text
    problem = stamp_problem(pattern)
    if problem:
        log.info("no tested-on stamp on %s: %s", page.file.src_uri, problem)
        return html_text
    stamp = read_stamp(pattern)
    assert stamp is not None
    line = f'<p class="tested-on"><small>{html.escape(stamp_line(stamp))}</small></p>'
    heading = re.search(r"</h1>", html_text)
    if heading is None:
        return line + html_text
    return html_text[: heading.end()] + "\n" + line + html_text[heading.end() :]


def main(argv: list[str]) -> int:
    if argv != ["write"]:
        print("usage: python -m tools.tested_on write", file=sys.stderr)
        return 2
    problems = write_stamps(ci_pythons())
    for problem in problems:
        print(f"tested-on: {problem}", file=sys.stderr)
    stale = [p for p in (stamp_problem(pattern) for pattern in patterns()) if p]
    print(f"tested-on: {len(patterns()) - len(stale)} current stamps in tested-on/")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
