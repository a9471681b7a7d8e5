"""Save and restore a directory the way actions/cache does, and inspect a venv.

actions/cache makes every path relative to the workspace and runs
``tar -cf ARCHIVE -P -C $GITHUB_WORKSPACE --files-from MANIFEST``; a restore
runs ``tar -xf ARCHIVE -P -C $GITHUB_WORKSPACE`` (``@actions/cache``,
``src/internal/tar.ts``, without the compression). A venv comes back byte
for byte, symbolic links included, at the same path below the workspace:
the same absolute path only if the workspace is the same.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["VenvLinks", "restore_cache", "save_cache", "venv_links"]


# --8<-- [start:tar]
def save_cache(workspace: Path, path: str, archive: Path) -> None:
    """Archive ``workspace/path`` with paths relative to the workspace."""
    subprocess.run(
        ["tar", "-cf", str(archive), "-P", "-C", str(workspace), path],
        check=True,
        timeout=120,
    )


def restore_cache(archive: Path, workspace: Path) -> None:
    """Unpack the archive into ``workspace``, as the restore step does."""
    workspace.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["tar", "-xf", str(archive), "-P", "-C", str(workspace)],
        check=True,
        timeout=120,
    )


# --8<-- [end:tar]


# --8<-- [start:links]
@dataclass(frozen=True)
class VenvLinks:
    """The absolute paths a venv depends on, and whether they still exist."""

    home: str  # pyvenv.cfg "home": the base interpreter's folder
    version: str  # pyvenv.cfg "version", major.minor: who last wrote it
    python: str  # the interpreter bin/python leads to, outside the venv
    python_exists: bool
    shebangs: dict[str, str]  # script in bin/ -> the interpreter its #! names


def venv_links(venv: Path) -> VenvLinks:
    """Read ``pyvenv.cfg``, the ``bin/python`` links and each script's ``#!``."""
    lines = (venv / "pyvenv.cfg").read_text().splitlines()
    config = dict(line.split(" = ", 1) for line in lines if " = " in line)
    target = venv / "bin" / "python"
    while target.is_symlink() and target.parent == venv / "bin":
        target = target.parent / target.readlink()  # python -> python3.11 -> /...
    shebangs = {}
    for script in sorted((venv / "bin").iterdir()):
        if script.is_file() and not script.is_symlink():
            first = script.read_bytes().split(b"\n", 1)[0]
            if first.startswith(b"#!"):
                shebangs[script.name] = first[2:].decode().strip()
    return VenvLinks(
        home=config["home"],
        version=".".join(config["version"].split(".")[:2]),
        python=str(target),
        python_exists=target.exists(),  # follows any further links
        shebangs=shebangs,
    )


# --8<-- [end:links]
