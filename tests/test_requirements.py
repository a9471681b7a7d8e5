"""The lock files match pyproject's dependency groups, and each purpose gets its own.

``make lock`` writes ``requirements/<name>.lock`` with ``uv pip compile --group ...``;
the command is the lock's header, so it says which groups the lock holds.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from tests.conftest import ROOT

LOCKS = sorted((ROOT / "requirements").glob("*.lock"))
GROUPS: dict[str, list[str]] = tomllib.loads((ROOT / "pyproject.toml").read_text())[
    "dependency-groups"
]


def name_of(requirement: str) -> str:
    """``psycopg[binary]==3.3.9`` -> ``psycopg``, normalized as in a lock."""
    return (
        re.split(r"[\[=<>~! ;]", requirement, maxsplit=1)[0].lower().replace("_", "-")
    )


def pins(lock: Path) -> dict[str, set[str]]:
    """The versions each ``name==version`` line of a lock pins, after checking
    the line carries hashes (a name pinned per Python version has several)."""
    found: dict[str, set[str]] = {}
    lines = lock.read_text().splitlines()
    for number, line in enumerate(lines):
        match = re.match(r"([a-z0-9][a-z0-9._-]*)==(\S+)", line)
        if match:
            following = lines[number + 1] if number + 1 < len(lines) else ""
            assert "--hash=sha256:" in following, f"{lock.name}: {line} has no hash"
            found.setdefault(match[1], set()).add(match[2].rstrip(" \\"))
    return found


def groups_of(lock: Path) -> list[str]:
    header = lock.read_text().splitlines()[:3]
    command = next(line for line in header if "uv pip compile" in line)
    return re.findall(r"--group (\S+)", command)


def test_the_locks_are_there() -> None:
    names = {lock.stem for lock in LOCKS}
    assert names == {"docs", "pdf", "lint", "snippets", "test", "properdocs"}


@pytest.mark.parametrize("lock", LOCKS, ids=lambda lock: lock.name)
def test_a_lock_pins_every_requirement_of_its_groups(lock: Path) -> None:
    groups = groups_of(lock)
    assert groups, f"{lock.name}: no --group in its header; regenerate with make lock"
    locked = pins(lock)
    for group in groups:
        for requirement in GROUPS[group]:
            name, _, version = requirement.partition("==")
            version = version.split(";")[0].strip()  # without its environment marker
            assert version in locked.get(name_of(name), set()), (
                f"{lock.name} does not pin {requirement} (group {group}); run make lock"
            )


@pytest.mark.parametrize(
    "lock", [lock for lock in LOCKS if lock.stem != "test"], ids=lambda lock: lock.name
)
def test_the_test_lock_holds_every_other_lock_at_the_same_versions(lock: Path) -> None:
    """Installing test.lock stands for the smaller locks (make's stamps say so)."""
    everything = pins(ROOT / "requirements" / "test.lock")
    # ProperDocs is the one group test.lock leaves out (CI's compatibility build).
    own = {name_of(requirement) for requirement in GROUPS["properdocs"]}
    ours = {k: v for k, v in pins(lock).items() if k not in own}
    differ = {
        k: (v, everything.get(k)) for k, v in ours.items() if everything.get(k) != v
    }
    assert not differ, f"{lock.name} and test.lock disagree: {differ}; run make lock"


def test_the_site_lock_holds_nothing_the_tests_or_lint_need() -> None:
    site = set(pins(ROOT / "requirements" / "docs.lock"))
    others = {
        name_of(requirement)
        for group in ("pdf", "snippets", "test", "site-test", "lint")
        for requirement in GROUPS[group]
    } - {name_of(requirement) for requirement in GROUPS["docs"]}
    assert not site & others, f"make serve would install {sorted(site & others)}"


def test_make_serve_and_build_install_the_site_lock_only() -> None:
    makefile = (ROOT / "Makefile").read_text()
    for target in ("serve", "build"):
        rule = re.search(rf"(?m)^{target}:([^#\n]*)", makefile)
        assert rule, f"no {target} target"
        assert rule[1].split() == ["$(VENV)/.installed-docs"], rule[0]
