"""Run the snippet tests on every supported Python: `make test-all`.

For each version it finds an interpreter (``python3.X`` on PATH, or pyenv's
``~/.pyenv/versions/3.X.*``), builds ``.venv-3.X`` from requirements.lock, and
runs pytest on everything except the site checks (which test the build, not the
snippets). A missing interpreter fails the run under ``CI=true`` and is
reported as skipped otherwise.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# PYTHONS="3.12 3.13" limits the run (CI runs 3.11 in `make test` already).
VERSIONS = os.environ.get("PYTHONS", "3.11 3.12 3.13").split()
CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def find_python(version: str) -> str | None:
    pyenv = Path.home() / ".pyenv" / "versions"
    candidates = [
        *sorted(map(str, pyenv.glob(f"{version}.*/bin/python{version}")), reverse=True),
        shutil.which(f"python{version}"),
    ]
    for candidate in candidates:
        # pyenv's shims exist for every version but run only the selected ones.
        if candidate and subprocess.run([candidate, "-c", ""]).returncode == 0:
            return candidate
    return None


def venv_for(version: str, python: str) -> Path:
    venv = ROOT / f".venv-{version}"
    stamp = venv / ".installed"
    lock = ROOT / "requirements.lock"
    if stamp.exists() and stamp.stat().st_mtime >= lock.stat().st_mtime:
        return venv
    subprocess.run([python, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--require-hashes",
            "--no-deps",
            "-r",
            str(lock),
        ],
        check=True,
    )
    stamp.touch()
    return venv


def main() -> int:
    failed: list[str] = []
    for version in VERSIONS:
        python = find_python(version)
        if python is None:
            message = f"Python {version}: no interpreter found (python{version})"
            print(message)
            if CI:
                failed.append(version)
            continue
        venv = venv_for(version, python)
        print(f"== Python {version} ({python})", flush=True)
        result = subprocess.run(
            [
                str(venv / "bin" / "python"),
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "--ignore=tests/site",
                *sys.argv[1:],
            ],
            cwd=ROOT,
        )
        if result.returncode != 0:
            failed.append(version)
    if failed:
        print(f"failed on Python {', '.join(failed)}")
        return 1
    print(f"passed on Python {', '.join(VERSIONS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
