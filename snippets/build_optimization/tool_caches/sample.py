"""A small generated project for the tool-cache demos and tests.

``app/base.py`` defines ``scale``; twelve modules ``app/m01.py`` ...
``app/m12.py`` import it; ``app/cli.py`` imports ``m01`` and ``m02``. With
the package's ``__init__`` that is 15 modules. Not part of the page's API.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

__all__: list[str] = []

LEAVES = 12
MODULES = LEAVES + 3  # the leaves, base, cli and the package


def write_project(root: Path) -> Path:
    """Write the project under ``root`` and return ``root``."""
    app = root / "app"
    app.mkdir(parents=True, exist_ok=True)
    # The target version, pinned: mypy's default is the running interpreter's.
    (root / "pyproject.toml").write_text('[tool.mypy]\npython_version = "3.11"\n')
    (app / "__init__.py").write_text("")
    (app / "base.py").write_text("def scale(x: int) -> int:\n    return x * 2\n")
    for n in range(1, LEAVES + 1):
        (app / f"m{n:02}.py").write_text(
            "from app.base import scale\n\n\n"
            f"def f{n:02}(x: int) -> int:\n    return scale(x) + {n}\n"
        )
    (app / "cli.py").write_text(
        "from app import m01, m02\n\n\n"
        "def main() -> int:\n    return m01.f01(1) + m02.f02(2)\n"
    )
    return root


def edit_body(root: Path, n: int = 5) -> None:
    """Change what ``m<n>`` does, not its signature (its interface)."""
    path = root / "app" / f"m{n:02}.py"
    path.write_text(path.read_text().replace(f"+ {n}\n", f"+ {n * 10}\n"))


def edit_interface(root: Path) -> None:
    """Change the signature of ``base.scale``, which every leaf imports."""
    (root / "app" / "base.py").write_text(
        "def scale(x: int, k: int = 2) -> int:\n    return x * k\n"
    )


def edit_config(root: Path) -> None:
    """Turn on ``strict = true`` in the project's mypy configuration."""
    config = root / "pyproject.toml"
    config.write_text(config.read_text() + "strict = true\n")


def pretend_written_by(cache_dir: Path, version: str) -> int:
    """Set ``version_id`` in every JSON cache entry, as if ``version`` wrote it.

    Only the JSON layout (``--no-sqlite-cache --no-fixed-format-cache``) is
    plain text; returns how many entries it rewrote.
    """
    count = 0
    for meta in cache_dir.rglob("*.meta.json"):
        data = json.loads(meta.read_text())
        data["version_id"] = version
        meta.write_text(json.dumps(data))
        count += 1
    return count


def copy_tree(source: Path, target: Path) -> Path:
    """Copy a project (or a project with its cache), times included."""
    shutil.copytree(source, target, symlinks=True)
    return target


def break_types(root: Path, n: int = 5) -> None:
    """Make ``m<n>`` return a str where it promises an int."""
    path = root / "app" / f"m{n:02}.py"
    path.write_text(path.read_text().replace("return scale(x)", "return str(x)  #"))
