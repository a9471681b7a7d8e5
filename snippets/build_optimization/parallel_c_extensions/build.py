"""Ask setuptools for a parallel ``build_ext``, three ways, and run it.

setuptools' ``build_ext`` has one parallel option, ``parallel`` (``-j`` on
its command line). It reaches the command from the command line, from a
``[build_ext]`` section in ``setup.cfg``, or from the extra configuration
file named by ``DIST_EXTRA_CONFIG``: the one way that also works under
``pip`` and ``python -m build``, which pass no ``-j`` of their own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

__all__ = ["build_ext_command", "extra_config_env", "run_build_ext"]


# --8<-- [start:command]
def build_ext_command(python: str, jobs: int | None = None) -> list[str]:
    """``python setup.py build_ext --inplace [-j N]``: compile in place."""
    command = [python, "setup.py", "build_ext", "--inplace"]
    if jobs is not None:
        command += ["-j", str(jobs)]  # --parallel N; "parallel" in setup.cfg
    return command


# --8<-- [end:command]


# --8<-- [start:extra_config]
def extra_config_env(config_dir: Path, jobs: int) -> dict[str, str]:
    """Environment that gives every setuptools build ``parallel = jobs``.

    setuptools reads the file named by ``DIST_EXTRA_CONFIG`` after
    ``setup.cfg``, whichever frontend started the build (pip, build, uv).
    """
    config = config_dir / "build-parallel.cfg"
    config.write_text(f"[build_ext]\nparallel = {jobs}\n")
    return {"DIST_EXTRA_CONFIG": str(config)}


# --8<-- [end:extra_config]


def run_build_ext(
    project: Path,
    jobs: int | None = None,
    env: Mapping[str, str] | None = None,
    python: str = sys.executable,
) -> subprocess.CompletedProcess[str]:
    """Build the project's extensions in place; raise with its output on error."""
    result = subprocess.run(
        build_ext_command(python, jobs),
        cwd=project,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0:
        raise RuntimeError(f"build_ext failed:\n{result.stdout}{result.stderr}")
    return result
