"""Tests for snippets/build_optimization/parallel_c_extensions/.

The real setuptools ``build_ext`` compiles a generated package with gcc,
behind a wrapper that logs each compile's start and end. Overlap is read from
those logs; where a test needs the exact peak, each compile holds until as
many compiles ran at once as the build could allow (or 2 s pass). Wall times
are printed, never asserted: two shared cores make them noisy.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from snippets.build_optimization.parallel_c_extensions import (
    SETUP_CFG,
    build_ext_command,
    extra_config_env,
    run_build_ext,
    write_project,
)
from snippets.support.build_optimization_cc import (
    peak_overlap,
    read_log,
    setuptools_python,
    wrapped_cc,
)
from snippets.support.build_optimization_gate import require_tool
from snippets.support.build_optimization_gauge import FileGauge
from snippets.support.services import ServiceUnavailable
from tests.conftest import unavailable


@pytest.fixture
def python() -> str:
    try:
        require_tool("gcc")
        return setuptools_python()
    except ServiceUnavailable as error:
        unavailable("gcc and setuptools", str(error))
        raise


def held_peak(
    tmp_path: Path,
    python: str,
    *,
    extensions: int = 4,
    files: int = 1,
    jobs: int | None = None,
    want: int = 1,
    extra: dict[str, str] | None = None,
) -> int:
    project = write_project(tmp_path / "pkg", extensions, files, weight=1)
    if extra is None:
        extra = {}
    if "setup.cfg" in extra:
        (project.root / "setup.cfg").write_text(extra.pop("setup.cfg"))
    env = wrapped_cc(tmp_path / "cc.log", tmp_path / "gauge.json", want) | extra
    run_build_ext(project.root, jobs, env, python)
    assert len(read_log(tmp_path / "cc.log")) == project.compiles
    peak: int = FileGauge(tmp_path / "gauge.json").read()["peak"]
    return peak


def test_build_ext_without_j_compiles_one_file_at_a_time(
    tmp_path: Path, python: str
) -> None:
    assert held_peak(tmp_path, python, want=4) == 1


def test_j4_runs_four_extensions_at_once(tmp_path: Path, python: str) -> None:
    assert held_peak(tmp_path, python, jobs=4, want=4) == 4


def test_j8_is_capped_by_the_number_of_extensions(tmp_path: Path, python: str) -> None:
    assert held_peak(tmp_path, python, jobs=8, want=8) == 4


def test_one_extension_never_compiles_in_parallel(tmp_path: Path, python: str) -> None:
    peak = held_peak(tmp_path, python, extensions=1, files=3, jobs=4, want=4)
    assert peak == 1  # setuptools parallelises per extension, not per file


def test_setup_cfg_parallel(tmp_path: Path, python: str) -> None:
    assert held_peak(tmp_path, python, want=4, extra={"setup.cfg": SETUP_CFG}) == 4


def test_dist_extra_config_parallel(tmp_path: Path, python: str) -> None:
    extra = extra_config_env(tmp_path, 4)
    assert held_peak(tmp_path, python, want=4, extra=extra) == 4


def test_command_line_j_beats_setup_cfg(tmp_path: Path, python: str) -> None:
    extra = {"setup.cfg": SETUP_CFG}
    assert held_peak(tmp_path, python, jobs=2, want=4, extra=extra) == 2


def test_parallel_must_be_an_integer(tmp_path: Path, python: str) -> None:
    project = write_project(tmp_path / "pkg", 1, 1, weight=1)
    (project.root / "setup.cfg").write_text("[build_ext]\nparallel = auto\n")
    with pytest.raises(RuntimeError, match="parallel should be an integer"):
        run_build_ext(project.root, None, {}, python)


def test_build_ext_command() -> None:
    assert build_ext_command("py") == ["py", "setup.py", "build_ext", "--inplace"]
    assert build_ext_command("py", 4)[-2:] == ["-j", "4"]


def test_real_compiles_overlap_with_j4(tmp_path: Path, python: str) -> None:
    """No holding: plain gcc runs, logged; wall times printed, overlap asserted."""
    peaks = {}
    for jobs in (None, 4):
        where = tmp_path / f"j{jobs}"
        project = write_project(where / "pkg", 4, 2, weight=4)
        started = time.monotonic()
        run_build_ext(project.root, jobs, wrapped_cc(where / "cc.log"), python)
        wall = time.monotonic() - started
        rows = read_log(where / "cc.log")
        peaks[jobs] = peak_overlap(rows)
        print(f"-j {jobs}: {len(rows)} compiles, peak {peaks[jobs]}, {wall:.1f} s")
    assert peaks[None] == 1
    assert peaks[4] > 1


def test_imported_extension_runs(tmp_path: Path, python: str) -> None:
    import subprocess

    project = write_project(tmp_path / "pkg", 2, 1, weight=1)
    run_build_ext(project.root, 2, {}, python)
    result = subprocess.run(
        [python, "-c", "import demo_pkg.ext1 as e; print(e.run(7))"],
        cwd=project.root,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip().isdigit()
