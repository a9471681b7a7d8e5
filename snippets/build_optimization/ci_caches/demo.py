"""The cases the CI-caches page shows.

    python -m snippets.build_optimization.ci_caches.demo downloads
    python -m snippets.build_optimization.ci_caches.demo moved
    python -m snippets.build_optimization.ci_caches.demo patch
    python -m snippets.build_optimization.ci_caches.demo minor
    python -m snippets.build_optimization.ci_caches.demo stale

Every case installs the demo's wheels (sample.py) from a package index on
127.0.0.1 (index.py) with the real pip, into venvs under a temporary
"workspace", with a private, empty ``PIP_CACHE_DIR``. The counts come from
the index (the GETs it answered) and from pip's output; nothing is timed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from snippets.build_optimization.ci_caches import (
    Install,
    LocalIndex,
    installed_versions,
    new_venv,
    pip_check,
    pip_install,
    restore_cache,
    save_cache,
    serve_index,
    venv_links,
)
from snippets.build_optimization.ci_caches.sample import (
    LOCK_1,
    LOCK_2,
    find_python,
    write_lock,
    write_wheels,
)
from snippets.support.cases import run_cases

__all__: list[str] = []  # the cases a page shows; the API is the package


@dataclass
class Scene:
    """A scratch folder with wheels, a lock, an index and a pip cache."""

    root: Path
    index: LocalIndex
    lock: Path

    @property
    def cache(self) -> Path:
        return self.root / "pip-cache"

    def install(self, venv: Path, lock: Path | None = None) -> Install:
        python = venv / "bin" / "python"
        return pip_install(python, lock or self.lock, self.index.url, self.cache)


@contextmanager
def scene() -> Iterator[Scene]:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        wheels = write_wheels(root / "wheels")
        lock = write_lock(root / "ws-1" / "requirements.lock", LOCK_1)
        with serve_index(wheels) as index:
            yield Scene(root, index, lock)


def gets(index: LocalIndex) -> list[str]:
    """The GETs since the last call, by kind and status."""
    taken = index.take()
    lines = []
    for kind, label in (("page", "/simple/<project>/"), ("file", "/files/<wheel>")):
        statuses = sorted((s, n) for (k, s), n in taken.items() if k == kind)
        total = sum(n for _, n in statuses)
        detail = ", ".join(f"{n} x {s}" for s, n in statuses)
        lines.append(f"  GET {label:<20} {total}" + (f" ({detail})" if detail else ""))
    return lines


def remove(path: Path) -> None:
    shutil.rmtree(path)


def show_downloads() -> list[str]:
    """Cold download cache, warm download cache, restored venv."""
    with scene() as s:
        ws = s.root / "ws-1"
        new_venv(ws / ".venv")
        cold = s.install(ws / ".venv")
        lines = ["1. empty PIP_CACHE_DIR, new venv", *gets(s.index)]
        lines.append(f"  installed                {len(cold.installed)}")
        remove(ws / ".venv")  # the next CI run starts without it
        new_venv(ws / ".venv")
        warm = s.install(ws / ".venv")
        lines += ["2. same PIP_CACHE_DIR, new venv", *gets(s.index)]
        lines.append(
            f"  installed                {len(warm.installed)}"
            f' ({warm.from_cache} files "Using cached")'
        )
        save_cache(ws, ".venv", s.root / "venv.tar")
        remove(ws / ".venv")
        restore_cache(s.root / "venv.tar", ws)
        again = s.install(ws / ".venv")
        lines += [
            "3. venv restored at the same path, pip install again",
            *gets(s.index),
        ]
        lines.append(
            f"  installed                {len(again.installed)}"
            f' ({again.already_satisfied} "Requirement already satisfied")'
        )
        code, report = pip_check(ws / ".venv" / "bin" / "python")
        lines.append(f"  pip check                {report} (exit {code})")
        return lines


def run(command: str) -> tuple[int, str]:
    """``command`` in bash, as a CI step runs it: exit status, last line."""
    result = subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, timeout=60
    )
    output = (result.stdout + result.stderr).strip().splitlines()
    return result.returncode, output[-1] if output else ""


def shown(text: str, names: dict[Path, str]) -> str:
    """``text`` with the demo's temporary paths replaced by their labels."""
    for path, label in names.items():
        text = text.replace(str(path), label)
    return text


def yes(value: bool) -> str:
    return "yes" if value else "no"


def show_moved() -> list[str]:
    """The venv restored into another workspace path."""
    with scene() as s:
        ws1, ws2 = s.root / "ws-1", s.root / "ws-2"
        new_venv(ws1 / ".venv")
        s.install(ws1 / ".venv")
        save_cache(ws1, ".venv", s.root / "venv.tar")
        remove(ws1)  # another runner, or another checkout folder
        restore_cache(s.root / "venv.tar", ws2)
        venv, names = ws2 / ".venv", {ws1: "<ws-1>", ws2: "<ws-2>"}
        links = venv_links(venv)
        imports = run(f"{venv}/bin/python -c 'import dependency_0'")[0] == 0
        code, message = run(f"{venv}/bin/cli-tool")
        return [
            "venv saved from <ws-1>/.venv, restored to <ws-2>/.venv",
            f"  bin/python runs, imports dependency_0   {yes(imports)}",
            f"  bin/cli-tool starts with  #!{shown(links.shebangs['cli-tool'], names)}",
            f"  bin/cli-tool              exit {code}",
            f"    {shown(message, names)}",
        ]


def tool_cache_python(tool_cache: Path, real: str, version: str) -> Path:
    """``tool_cache/Python/<version>/x64/bin/python3.X``, linked to ``real``.

    The layout of a runner's tool cache, where setup-python finds Python.
    """
    minor = ".".join(version.split(".")[:2])
    bin_dir = tool_cache / "Python" / version / "x64" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / f"python{minor}").symlink_to(real)
    return bin_dir / f"python{minor}"


def show_patch() -> list[str]:
    """The runner image replaced the patch release the venv was made with."""
    with scene() as s:
        ws, tool_cache = s.root / "ws-1", s.root / "hostedtoolcache"
        old = tool_cache_python(tool_cache, find_python("3.11"), "3.11.9")
        new_venv(ws / ".venv", str(old))
        s.install(ws / ".venv")
        save_cache(ws, ".venv", s.root / "venv.tar")
        remove(ws / ".venv")
        (tool_cache / "Python" / "3.11.9").rename(tool_cache / "Python" / "3.11.10")
        restore_cache(s.root / "venv.tar", ws)  # the key named only "3.11"
        links = venv_links(ws / ".venv")
        code, message = run(f"{ws}/.venv/bin/python -c 'import dependency_0'")
        names = {tool_cache: "<tool cache>", ws: "<ws>"}
        return [
            "venv made with Python/3.11.9, restored after 3.11.10 replaced it",
            f"  pyvenv.cfg home        {shown(links.home, names)}",
            f"  bin/python links to    {shown(links.python, names)}",
            f"  which exists           {yes(links.python_exists)}",
            f"  bin/python -c 'import dependency_0'   exit {code}",
            f"    {shown(message, names)}",
        ]


def show_minor() -> list[str]:
    """A key without the Python version: a 3.11 venv in a 3.12 job."""
    python311, python312 = find_python("3.11"), find_python("3.12")
    with scene() as s:
        venv = s.root / "ws-1" / ".venv"
        new_venv(venv, python311)
        s.install(venv)  # saved by a 3.11 job, restored by a 3.12 job
        probe = "import sys; print('%d.%d' % sys.version_info[:2])"
        before = run(f"{venv}/bin/python -c {probe!r}")[1]
        new_venv(venv, python312)  # python3.12 -m venv --without-pip .venv
        after = run(f"{venv}/bin/python -c {probe!r}")[1]
        config = venv_links(venv).version
        code, message = run(f"{venv}/bin/python3.12 -c 'import dependency_0'")
        return [
            "a 3.11 venv restored in a 3.12 job",
            f"  .venv/bin/python is                 {before}",
            "  after python3.12 -m venv --without-pip .venv:",
            f"    pyvenv.cfg version                {config}",
            f"    .venv/bin/python is               {after}",
            f"    .venv/bin/python3.12 -c 'import dependency_0'   exit {code}",
            f"      {message}",
        ]


def show_stale() -> list[str]:
    """restore-keys: the venv of the previous lock, then pip install."""
    with scene() as s:
        ws = s.root / "ws-1"
        new_venv(ws / ".venv")
        s.install(ws / ".venv")  # lock 1
        save_cache(ws, ".venv", s.root / "venv.tar")
        remove(ws / ".venv")
        lock_2 = write_lock(ws / "requirements.lock", LOCK_2)
        restore_cache(s.root / "venv.tar", ws)  # restore-keys matched lock 1's
        update = s.install(ws / ".venv", lock_2)  # cache-hit is false: install
        have = installed_versions(ws / ".venv" / "bin" / "python")
        extra = sorted(set(have) - set(LOCK_2))
        code, report = pip_check(ws / ".venv" / "bin" / "python")
        return [
            "venv of lock 1 restored by restore-keys, pip install -r lock 2",
            f"  installed                  {' '.join(update.installed)}",
            f"  already satisfied          {update.already_satisfied}",
            "  installed, not in lock 2   "
            + " ".join(f"{name}=={have[name]}" for name in extra),
            f"  pip check                  {report} (exit {code})",
        ]


if __name__ == "__main__":
    cases = {"downloads": show_downloads, "moved": show_moved}
    cases |= {"patch": show_patch, "minor": show_minor, "stale": show_stale}
    sys.exit(run_cases(cases))
