"""Run the CPU-quota page's probe inside `docker run --cpus=N`.

The probe (`snippets/container_orchestration/cpu_quota_sizing/inside.py`)
runs from the repository's `snippets/` folder, mounted read-only, under the
base image's Python 3.11 or a Python 3.13 from this machine mounted at its own
path. The container gets a high CPU weight (`--cpu-shares` under a top-level
cgroup parent), so that on a busy two-CPU machine the quota, not the
neighbours, is what limits it.
"""

from __future__ import annotations

import glob
import json
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

from snippets.support.docker_engine import base_image, container_name, docker, removed
from snippets.support.services import ServiceUnavailable

__all__ = ["WEIGHT", "inside_container", "python313"]

SNIPPETS = Path(__file__).parents[1]
WEIGHT = ["--cgroup-parent=/", "--cpu-shares=262144"]


@cache
def python313() -> tuple[str, str]:
    """(a Python 3.13 executable, its installation prefix) on this machine."""
    candidates = sorted(glob.glob("/root/.pyenv/versions/3.13*/bin/python3.13"))
    which = shutil.which("python3.13")
    candidates += [str(Path(which).resolve())] if which else []
    for executable in candidates:
        run = subprocess.run(
            [executable, "-c", "import sys; print(sys.base_prefix)"],
            capture_output=True,
            text=True,
        )
        if run.returncode == 0:
            return executable, run.stdout.strip()
    raise ServiceUnavailable("no Python 3.13 on this machine; pyenv install 3.13")


def inside_container(
    cpus: str, *, python: str = "3.11", tasks: int = 8
) -> dict[str, Any]:
    """The probe's report from a container with `--cpus=cpus`."""
    image = base_image()
    name = container_name("cpu")
    mounts = ["-v", f"{SNIPPETS}:/src/snippets:ro"]
    executable = "python3"
    if python == "3.13":
        executable, prefix = python313()
        mounts += ["-v", f"{prefix}:{prefix}:ro"]
    module = "snippets.container_orchestration.cpu_quota_sizing.inside"
    with removed([name]):
        run = docker(
            "run", "--name", name, "--pull", "never", "--network", "none",
            f"--cpus={cpus}", *WEIGHT, *mounts, "-e", "PYTHONPATH=/src",
            "-e", "PYTHONDONTWRITEBYTECODE=1", "-w", "/src",
            image, executable, "-m", module, str(tasks),
        )  # fmt: skip
    report: dict[str, Any] = json.loads(run.stdout)
    return report
