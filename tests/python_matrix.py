"""Run the pattern tests on every supported Python: `make test-all`.

The versions are ``PYTHONS`` in ``.ci/versions`` (the environment variable
``PYTHONS="3.12 3.13"`` narrows a run). For each version it finds an interpreter
(pyenv's ``~/.pyenv/versions/3.X.*``, or ``python3.X`` on PATH), builds
``.venv-3.X`` from ``requirements/snippets.lock`` (the snippet and test groups
only), and runs pytest on everything except the site checks (which test the
build, not the snippets). On every Python but the first it also leaves out the
tests whose subject runs in Chromium, Node.js or a container
(``--python-dependent-only``): the Python that drives those does not change
what they test, and the first Python runs them. The versions run side by side, at most
``MATRIX_JOBS`` at once (default 3), each with ``MATRIX_WORKERS`` pytest-xdist
workers (default 1: the versions are the parallelism); each writes
``.reports/python-3.X.log`` (and its timings, ``python-3.X.xml``), printed in
version order as it completes.

A missing interpreter fails the run under ``CI=true`` and is reported as
skipped otherwise. After a green run, outside CI, it writes the "tested on"
stamps from the runs' records (tools/tested_on.py); CI only checks them.

``python tests/python_matrix.py --which 3.11`` prints the interpreter it would
use for a version (.ci/run uses it for `make test`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools.tested_on import ci_pythons  # noqa: E402

VERSIONS = os.environ.get("PYTHONS", "").split() or ci_pythons()
CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
JOBS = int(os.environ.get("MATRIX_JOBS", "3"))
WORKERS = os.environ.get("MATRIX_WORKERS", "1")
LOCK = ROOT / "requirements" / "snippets.lock"
LOGS = ROOT / ".reports"


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


def venv_for(version: str, python: str, log: IO[str]) -> Path:
    venv = ROOT / f".venv-{version}"
    stamp = venv / ".installed-snippets"
    if stamp.exists() and stamp.stat().st_mtime >= LOCK.stat().st_mtime:
        return venv
    subprocess.run([python, "-m", "venv", "--clear", str(venv)], check=True)
    python_venv = str(venv / "bin" / "python")
    pip = [
        python_venv,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
    ]
    subprocess.run(
        [*pip, "--require-hashes", "--no-deps", "-r", str(LOCK)],
        check=True,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    stamp.touch()
    return venv


@dataclass
class Run:
    version: str
    python: str | None = None
    returncode: int | None = None
    seconds: float = 0.0

    @property
    def log(self) -> Path:
        return LOGS / f"python-{self.version}.log"


def run_version(run: Run) -> Run:
    started = time.monotonic()
    with run.log.open("w") as log:
        assert run.python is not None
        try:
            venv = venv_for(run.version, run.python, log)
        except subprocess.CalledProcessError as error:
            log.write(f"could not build .venv-{run.version}: {error}\n")
            run.returncode = 1
            return run
        parallel = ["-n", WORKERS, "--dist", "loadscope"] if WORKERS != "1" else []
        # The tests whose subject runs in Chromium, Node.js or a container run
        # on the first Python only (tests/conftest.py, python_independent).
        once = [] if run.version == ci_pythons()[0] else ["--python-dependent-only"]
        pytest = [
            str(venv / "bin" / "python"),
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
        ]
        result = subprocess.run(
            [
                *pytest,
                *parallel,
                *once,
                "--ignore=tests/site",
                "--ignore=tests/test_tested_on.py",
                f"--junitxml={LOGS / f'python-{run.version}.xml'}",
                *sys.argv[1:],
            ],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    # pytest's 5, no tests ran: every selected test was left to the first Python
    left_all = once and result.returncode == 5
    run.returncode = 0 if left_all else result.returncode
    run.seconds = time.monotonic() - started
    return run


def main() -> int:
    if sys.argv[1:2] == ["--which"]:
        python = find_python(sys.argv[2])
        print(python or "")
        return 0 if python else 1
    LOGS.mkdir(exist_ok=True)
    runs = [Run(version, find_python(version)) for version in VERSIONS]
    missing = [run for run in runs if run.python is None]
    for run in missing:
        print(f"Python {run.version}: no interpreter found (python{run.version})")
    lock = threading.Lock()
    with ThreadPoolExecutor(max_workers=max(1, JOBS)) as pool:
        futures: list[Future[Run]] = [
            pool.submit(run_version, run) for run in runs if run.python is not None
        ]
        print(
            f"== Python {', '.join(r.version for r in runs if r.python)}: "
            f"{len(futures)} side by side (at most {JOBS} at once), "
            f"logs in {LOGS.relative_to(ROOT)}/python-3.X.log",
            flush=True,
        )
        for future in futures:  # in version order, each as soon as it is done
            run = future.result()
            with lock:
                print(f"\n== Python {run.version} ({run.python}): {run.seconds:.0f} s")
                print(run.log.read_text(), end="", flush=True)
    failed = [run.version for run in runs if run.returncode != 0]
    failed = [v for v in failed if CI or v not in {r.version for r in missing}]
    if failed:
        print(f"failed on Python {', '.join(failed)}")
        return 1
    tested = [run.version for run in runs if run.python]
    print(f"passed on Python {', '.join(tested)}")
    if not CI:
        stamps = subprocess.run(
            [sys.executable, "-m", "tools.tested_on", "write"], cwd=ROOT
        )
        if stamps.returncode != 0:
            print("tested-on stamps: not all written (see above)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
