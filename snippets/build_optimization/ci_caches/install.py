"""Create a virtual environment and install a lock into it with pip.

`pip_install` runs ``pip install -r requirements.txt`` against one index with
one download cache (``PIP_CACHE_DIR``) and reports, from pip's own output,
what it installed, what was already there, and which files it took from its
HTTP cache ("Using cached ...") instead of downloading them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "Install",
    "installed_versions",
    "new_venv",
    "pip_check",
    "pip_env",
    "pip_install",
]


@dataclass(frozen=True)
class Install:
    """What one ``pip install`` did, read from its output."""

    installed: tuple[str, ...]  # "name-version", as pip printed them
    already_satisfied: int  # "Requirement already satisfied: ..." lines
    from_cache: int  # "Using cached ..." lines: files pip did not download


def new_venv(path: Path, python: str = sys.executable) -> Path:
    """``python -m venv --without-pip path``; its interpreter's path.

    No pip inside: the installs below run the outer pip with ``--python``.
    """
    subprocess.run([python, "-m", "venv", "--without-pip", str(path)], check=True)
    return path / "bin" / "python"


# --8<-- [start:env]
def pip_env(cache_dir: Path) -> dict[str, str]:
    """The environment of a pip run: this download cache and nothing else.

    No configuration file and no ``PIP_*`` variable from outside can change
    the index or the cache under the run.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    return env | {
        "PIP_CACHE_DIR": str(cache_dir),
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_INPUT": "1",
    }


# --8<-- [end:env]


# --8<-- [start:install]
def pip_install(
    venv_python: Path,
    requirements: Path,
    index_url: str,
    cache_dir: Path,
    timeout: float = 120,
) -> Install:
    """``pip install -r requirements`` into the venv of ``venv_python``.

    pip keeps an HTTP cache only for HTTPS and for ``--trusted-host``
    hosts, so a plain-HTTP index on loopback is named as trusted.
    """
    host = index_url.split("/")[2].split(":")[0]
    command = [sys.executable, "-m", "pip", "--python", str(venv_python)]
    command += ["install", "--index-url", index_url, "--trusted-host", host]
    command += ["-r", str(requirements)]
    result = subprocess.run(
        command,
        env=pip_env(cache_dir),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )
    lines = result.stdout.splitlines()
    done = [line for line in lines if line.startswith("Successfully installed ")]
    installed = done[0].split()[2:] if done else []
    return Install(
        installed=tuple(sorted(installed)),
        already_satisfied=sum(
            line.startswith("Requirement already satisfied") for line in lines
        ),
        from_cache=sum(line.strip().startswith("Using cached ") for line in lines),
    )


# --8<-- [end:install]


def pip_check(
    venv_python: Path, env: Mapping[str, str] | None = None
) -> tuple[int, str]:
    """``pip check`` of the venv: exit status and what it printed."""
    result = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv_python), "check"],
        env=dict(env) if env is not None else None,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result.returncode, (result.stdout + result.stderr).strip()


# --8<-- [start:versions]
def installed_versions(venv_python: Path) -> dict[str, str]:
    """Every distribution in the venv, ``{normalised name: version}``.

    Compare it with the lock: a name the lock does not pin is a package an
    earlier install left behind.
    """
    script = (
        "import importlib.metadata as m, json, re\n"
        "print(json.dumps({re.sub(r'[-_.]+', '_', d.metadata['Name']).lower():"
        " d.version for d in m.distributions()}))"
    )
    result = subprocess.run(
        [str(venv_python), "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    versions: dict[str, str] = json.loads(result.stdout)
    return dict(sorted(versions.items()))


# --8<-- [end:versions]
