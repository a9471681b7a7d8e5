"""The demo project's dependencies: wheels, two locks, and other Pythons.

The wheels are pure Python, written here with
`snippets.build_optimization.container_image_layers.project.make_wheel`:
``dependency_0`` to ``dependency_2``, ``dependency_0`` in two versions, a
``legacy`` package that the newer lock drops, and ``cli_tool``, whose wheel
declares a console script, so an install writes ``bin/cli-tool`` with a
``#!`` line naming the venv's interpreter.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

from snippets.build_optimization.container_image_layers.project import make_wheel
from snippets.support.services import ServiceUnavailable

__all__ = ["LOCK_1", "LOCK_2", "find_python", "write_lock", "write_wheels"]

# The lock before and after a dependency update.
LOCK_1 = {"cli_tool": "1.0", "dependency_0": "1.0", "dependency_1": "1.0"}
LOCK_1 |= {"dependency_2": "1.0", "legacy": "1.0"}
LOCK_2 = {name: version for name, version in LOCK_1.items() if name != "legacy"}
LOCK_2 |= {"dependency_0": "1.1"}
MODULES = 5  # per wheel: small, the counts are the point


def _record_hash(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def add_files(wheel: Path, extra: dict[str, bytes]) -> None:
    """Add (or replace) files in a wheel and write its RECORD again."""
    with zipfile.ZipFile(wheel) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    record_name = next(name for name in files if name.endswith(".dist-info/RECORD"))
    del files[record_name]
    files |= extra
    record = "".join(
        f"{path},{_record_hash(data)},{len(data)}\n" for path, data in files.items()
    )
    files[record_name] = (record + f"{record_name},,\n").encode()
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, data in files.items():
            info = zipfile.ZipInfo(path, date_time=(2026, 1, 1, 0, 0, 0))
            archive.writestr(info, data)


def write_wheels(folder: Path) -> Path:
    """Every wheel either lock names, in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, version in sorted({*LOCK_1.items(), *LOCK_2.items()}):
        wheel = make_wheel(folder, name, version, MODULES)
        if name == "cli_tool":  # a console script, and the function it calls
            entry = b"[console_scripts]\ncli-tool = cli_tool:main\n"
            main = b'def main() -> None:\n    print("ok")\n'
            dist_info = f"cli_tool-{version}.dist-info"
            add_files(
                wheel,
                {f"{dist_info}/entry_points.txt": entry, "cli_tool/__init__.py": main},
            )
    return folder


def write_lock(path: Path, lock: dict[str, str]) -> Path:
    """A requirements file that pins every package, one per line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{n}=={v}\n" for n, v in sorted(lock.items())))
    return path


def find_python(minor: str) -> str:
    """An interpreter of CPython ``minor`` (``"3.12"``) on this machine.

    pyenv's versions, then ``python3.X`` on ``PATH``, then the runner's tool
    cache (``$RUNNER_TOOL_CACHE/Python/3.X.*``, where GitHub's images keep
    several versions).
    """
    candidates = sorted(
        map(str, (Path.home() / ".pyenv/versions").glob(f"{minor}.*/bin/python{minor}"))
    )
    candidates.append(shutil.which(f"python{minor}") or "")
    tool_cache = Path(os.environ.get("RUNNER_TOOL_CACHE", "/opt/hostedtoolcache"))
    candidates += sorted(
        map(str, tool_cache.glob(f"Python/{minor}.*/*/bin/python{minor}"))
    )
    for candidate in candidates:
        if candidate and subprocess.run([candidate, "-c", ""]).returncode == 0:
            return candidate
    raise ServiceUnavailable(
        f"Python {minor} is not installed: `pyenv install {minor}`, or put "
        f"python{minor} on PATH"
    )
