"""The cases the tool-caches page shows.

    python -m snippets.build_optimization.tool_caches.demo incremental
    python -m snippets.build_optimization.tool_caches.demo invalidate
    python -m snippets.build_optimization.tool_caches.demo version
    python -m snippets.build_optimization.tool_caches.demo ruff

Each case writes the 15-module project of ``sample.py`` into a temporary
directory and runs the mypy, dmypy and ruff of the running interpreter
(the versions in requirements/test.lock). Every line is a count.
"""

from __future__ import annotations

import fcntl
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path

from snippets.build_optimization.tool_caches import (
    MypyRun,
    RuffRun,
    run_mypy,
    run_ruff,
)
from snippets.build_optimization.tool_caches.sample import (
    MODULES,
    copy_tree,
    edit_body,
    edit_config,
    edit_interface,
    pretend_written_by,
    write_project,
)
from snippets.support.cases import run_cases

__all__: list[str] = []  # the cases a page shows; the API is the package

JSON_CACHE = ("--no-sqlite-cache", "--no-fixed-format-cache")


@contextmanager
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as where:
        yield Path(where)


def modules(run: MypyRun) -> str:
    names = run.rechecked
    shown = ", ".join(names) if len(names) <= 2 else f"{names[0]} ... {names[-1]}"
    return f"re-checked {len(names):>2} of {MODULES}" + (f": {shown}" if names else "")


def reasons(run: MypyRun) -> str:
    return "; ".join(f"{n} x {why}" for why, n in run.abandoned.items()) or "-"


def row(label: str, run: MypyRun) -> str:
    return f"  {label:<34} {modules(run)}"


def show_incremental() -> list[str]:
    """Cold, warm, a fresh checkout's mtimes, a body edit, an interface edit."""
    lines = [f"mypy {version('mypy')}, {MODULES} modules in app/"]
    with scratch() as where:
        project, cache = write_project(where / "p"), where / "mypy-cache"
        lines.append(row("cold cache", run_mypy(project, cache)))
        lines.append(row("warm cache, nothing changed", run_mypy(project, cache)))
        for path in (project / "app").glob("*.py"):
            path.touch()  # what a fresh clone does to every file
        lines.append(row("every file touched (new mtime)", run_mypy(project, cache)))
        moved = copy_tree(where / "p", where / "elsewhere" / "p")
        lines.append(row("same files in another directory", run_mypy(moved, cache)))
        edit_body(project)
        lines.append(row("m05: body edited", run_mypy(project, cache)))
        edit_interface(project)
        lines.append(row("base.scale: signature changed", run_mypy(project, cache)))
    return lines


def show_invalidate() -> list[str]:
    """From a warm cache: the config, then the target version."""
    lines = []
    with scratch() as where:
        project, cache = write_project(where / "p"), where / "mypy-cache"
        run_mypy(project, cache)
        edit_config(project)
        steps: list[tuple[str, tuple[str, ...]]] = [
            ("strict = true in pyproject.toml", ()),
            ("same config again", ()),
            ("--python-version 3.12", ("--python-version", "3.12")),
        ]
        for label, flags in steps:
            run = run_mypy(project, cache, *flags)
            lines += [row(label, run), f"    cache entries discarded: {reasons(run)}"]
        folders = sorted(p.name for p in cache.iterdir() if p.is_dir())
        lines.append(f"  cache folders: {', '.join(folders)}")
    return lines


def show_version() -> list[str]:
    """A cache from another mypy version: discarded, unless told to trust it."""
    lines = []
    with scratch() as where:
        project, cache = write_project(where / "p"), where / "mypy-cache"
        run_mypy(project, cache, *JSON_CACHE)
        lines.append("cache written by mypy 2.3.0, read by " + version("mypy"))
        for label, flags in [
            ("default", JSON_CACHE),
            ("--skip-version-check", (*JSON_CACHE, "--skip-version-check")),
        ]:
            pretend_written_by(cache, "2.3.0")
            run = run_mypy(project, cache, *flags)
            lines += [row(label, run), f"    cache entries discarded: {reasons(run)}"]
    return lines


def together(
    project: Path, cache: Path, flags: tuple[str, ...], *, one_at_a_time: bool = False
) -> tuple[list[MypyRun], list[str]]:
    """Two mypy processes on one cache directory, started at the same moment.

    Returns the runs that finished and the errors of those that crashed
    (mypy's exit status 2). With ``one_at_a_time`` each holds an exclusive
    lock on ``<cache>.lock`` while it runs, as ``flock <cache>.lock mypy ...``
    (util-linux) would.
    """
    start = threading.Barrier(2)
    runs: list[MypyRun] = []
    crashes: list[str] = []
    lock = cache.with_name(cache.name + ".lock")

    def one() -> None:
        start.wait(timeout=30)
        with open(lock, "a") as held:
            if one_at_a_time:
                fcntl.flock(held, fcntl.LOCK_EX)  # released when closed
            try:
                runs.append(run_mypy(project, cache, *flags))
            except RuntimeError as crash:
                crashes.append(str(crash))

    threads = [threading.Thread(target=one) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=150)
    return runs, crashes


def show_ruff() -> list[str]:
    """Files ruff lints again: cold, warm, touched, moved, with a finding."""
    lines = [f"ruff {version('ruff')}, {MODULES} files in app/"]

    def row(label: str, project: Path, cache: Path | None) -> RuffRun:
        run = run_ruff(project, cache, paths=("app",))
        lines.append(f"  {label:<34} linted {len(run.linted):>2}")
        return run

    with scratch() as where:
        project, cache = write_project(where / "p"), where / "ruff-cache"
        row("cold cache", project, cache)
        row("warm cache, nothing changed", project, cache)
        (project / "app" / "m03.py").touch()
        row("m03 touched (same content)", project, cache)
        for path in (project / "app").glob("*.py"):
            path.touch()  # what a fresh clone does to every file
        row("every file touched (new mtime)", project, cache)
        moved = copy_tree(project, where / "elsewhere" / "p")
        row("same files in another directory", moved, cache)
        (project / "app" / "m04.py").write_text("import os\n")  # F401
        for label in ("m04 has a finding", "m04 has a finding, again"):
            run = row(label, project, cache)
        lines.append(f"  exit code with the finding: {run.exit_code}")
        row("--no-cache", moved, None)
        versions = sorted(p.name for p in cache.iterdir() if p.is_dir())
        lines.append(f"  cache folders: {', '.join(versions)}")
    return lines


CASES: dict[str, Callable[[], list[str]]] = {
    "incremental": show_incremental,
    "invalidate": show_invalidate,
    "version": show_version,
    "ruff": show_ruff,
}

if __name__ == "__main__":
    sys.exit(run_cases(CASES))
