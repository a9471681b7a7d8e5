"""The cases the parallel-C-extensions page shows.

    python -m snippets.build_optimization.parallel_c_extensions.demo jobs
    python -m snippets.build_optimization.parallel_c_extensions.demo settings

Every build runs the real ``python setup.py build_ext`` with gcc behind a
wrapper (`snippets.support.build_optimization_cc`) that counts compiles
running at once. Each compile holds, once compiled, until as many compiles
ran at once as were asked for (or 2 s pass): the peak is the most the build
allows, not a matter of how loaded the machine is.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from snippets.build_optimization.parallel_c_extensions import (
    SETUP_CFG,
    extra_config_env,
    run_build_ext,
    write_project,
)
from snippets.support.build_optimization_cc import (
    read_log,
    setuptools_python,
    wrapped_cc,
)
from snippets.support.build_optimization_gate import require_tool
from snippets.support.build_optimization_gauge import FileGauge
from snippets.support.cases import run_cases

__all__: list[str] = []  # the cases a page shows; the API is the package


def measure(
    label: str,
    *,
    extensions: int = 4,
    files: int = 1,
    jobs: int | None = None,
    want: int = 1,
    setup_cfg: str = "",
    extra_config: int | None = None,
) -> str:
    """Build a fresh project once; one line: how many compiles ran at once."""
    require_tool("gcc")
    python = setuptools_python()
    with tempfile.TemporaryDirectory() as scratch:
        where = Path(scratch)
        project = write_project(where / "pkg", extensions, files, weight=1)
        if setup_cfg:
            (project.root / "setup.cfg").write_text(setup_cfg)
        env = wrapped_cc(where / "cc.log", where / "gauge.json", want)
        if extra_config is not None:
            env |= extra_config_env(where, extra_config)
        run_build_ext(project.root, jobs, env, python)
        compiles = len(read_log(where / "cc.log"))
        peak = FileGauge(where / "gauge.json").read()["peak"]
    shape = f"{extensions} ext x {files + 1} files"
    return f"{label:<36} {shape:<16} {compiles:>2} compiles, peak {peak} at once"


def show_jobs() -> list[str]:
    """No -j, -j 4 and -j 8 on four extensions of two files each."""
    return [
        measure("build_ext"),
        measure("build_ext -j 4", jobs=4, want=4),
        measure("build_ext -j 8", jobs=8, want=8),
        measure("build_ext -j 4, one extension", extensions=1, files=3, jobs=4, want=4),
    ]


def show_settings() -> list[str]:
    """`parallel` from setup.cfg and from DIST_EXTRA_CONFIG, no -j given."""
    return [
        measure("setup.cfg [build_ext] parallel = 4", setup_cfg=SETUP_CFG, want=4),
        measure("DIST_EXTRA_CONFIG parallel = 4", extra_config=4, want=4),
        measure("DIST_EXTRA_CONFIG parallel = 0", extra_config=0, want=4),
    ]


if __name__ == "__main__":
    sys.exit(run_cases({"jobs": show_jobs, "settings": show_settings}))
