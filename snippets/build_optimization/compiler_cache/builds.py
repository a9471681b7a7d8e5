"""Put ccache in front of gcc for a setuptools build and a CMake build."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["cmake_build", "setuptools_build", "setuptools_ccache_env"]


def _run(
    command: Sequence[str], cwd: Path, env: Mapping[str, str]
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        list(command),
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{command[0]} failed:\n{result.stdout}{result.stderr}")
    return result


# --8<-- [start:setuptools]
def setuptools_ccache_env(cache: Mapping[str, str]) -> dict[str, str]:
    """``CC="ccache gcc"``: setuptools runs it for every compile (and link)."""
    return {**cache, "CC": "ccache gcc"}


def setuptools_build(project: Path, python: str, cache: Mapping[str, str]) -> None:
    """A clean ``build_ext`` through ccache: ``build/`` is removed first."""
    shutil.rmtree(project / "build", ignore_errors=True)
    command = [python, "setup.py", "build_ext", "--inplace", "-j", "4"]
    _run(command, project, setuptools_ccache_env(cache))


# --8<-- [end:setuptools]


# --8<-- [start:cmake]
def cmake_build(
    source: Path, cache: Mapping[str, str], build_type: str = "Release"
) -> None:
    """A clean configure and build with ccache as CMake's compiler launcher."""
    build = source / "build"
    shutil.rmtree(build, ignore_errors=True)
    configure = [
        "cmake",
        "-G",
        "Ninja",
        "-S",
        str(source),
        "-B",
        str(build),
        f"-DCMAKE_BUILD_TYPE={build_type}",
        "-DCMAKE_C_COMPILER_LAUNCHER=ccache",
    ]
    _run(configure, source, cache)
    _run(["cmake", "--build", str(build)], source, cache)


# --8<-- [end:cmake]
