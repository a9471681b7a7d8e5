"""Tests for snippets/build_optimization/tool_caches/.

The real mypy, dmypy and ruff from the lock check a generated 15-module
project in ``tmp_path``. What they did is counted from their ``-v`` logs:
the modules mypy scheduled as stale, the cache entries it abandoned and why,
the files ruff linted. One cold mypy run per module (a fixture); every other
test starts from a copy of its warm cache. Nothing is timed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

from snippets.build_optimization.tool_caches import (
    mypy_daemon,
    run_mypy,
    run_ruff,
)
from snippets.build_optimization.tool_caches.demo import JSON_CACHE, together
from snippets.build_optimization.tool_caches.sample import (
    LEAVES,
    MODULES,
    break_types,
    copy_tree,
    edit_body,
    edit_config,
    edit_interface,
    pretend_written_by,
    write_project,
)
from tests.conftest import ROOT, unavailable
from tools.errors import ErrorRecorder

pytestmark = pytest.mark.timeout(90)

WORKFLOW = ROOT / "snippets/build_optimization/tool_caches/mypy-ci.yml"
EVERY = ("app", "app.base", "app.cli", *(f"app.m{n:02}" for n in range(1, 13)))
LEAF_MODULES = tuple(f"app.m{n:02}" for n in range(1, LEAVES + 1))


@pytest.fixture(scope="module")
def warm_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project beside a cache written by one cold run (checked here)."""
    root = tmp_path_factory.mktemp("warm")
    project = write_project(root / "p")
    cold = run_mypy(project, root / "cache")
    assert cold.exit_code == 0
    assert cold.rechecked == EVERY and len(EVERY) == MODULES
    return root


@pytest.fixture
def warm(warm_tree: Path, tmp_path: Path) -> tuple[Path, Path]:
    """This test's own copy of the project and its warm cache."""
    copy_tree(warm_tree, tmp_path / "w")
    return tmp_path / "w" / "p", tmp_path / "w" / "cache"


# --------------------------------------------------------------------------- #
# mypy's incremental cache
# --------------------------------------------------------------------------- #


def test_warm_cache_rechecks_nothing(warm: tuple[Path, Path]) -> None:
    project, cache = warm
    run = run_mypy(project, cache)
    assert (run.exit_code, run.rechecked, run.abandoned) == (0, (), {})


def test_an_edit_rechecks_the_module_and_only_the_dependents_it_affects(
    warm: tuple[Path, Path],
) -> None:
    project, cache = warm
    edit_body(project)  # same signature: the interface hash is unchanged
    assert run_mypy(project, cache).rechecked == ("app.m05",)
    edit_interface(project)  # every leaf imports base; cli imports two leaves
    run = run_mypy(project, cache)
    assert run.rechecked == ("app.base", *LEAF_MODULES)
    assert run.abandoned == {"file has different size": 1}


def test_a_fresh_clone_in_another_directory_still_hits(
    warm: tuple[Path, Path], tmp_path: Path
) -> None:
    project, cache = warm
    clone = copy_tree(project, tmp_path / "clone" / "p")
    for path in (clone / "app").glob("*.py"):
        path.touch()  # new mtimes, same contents: mypy compares hashes
    assert run_mypy(clone, cache).rechecked == ()


def test_a_config_change_discards_every_entry(warm: tuple[Path, Path]) -> None:
    project, cache = warm
    edit_config(project)
    run = run_mypy(project, cache)
    assert run.rechecked == EVERY
    assert run.abandoned == {"options differ": MODULES}


def test_a_cache_from_another_mypy_version_is_discarded_not_trusted(
    tmp_path: Path, error_record: ErrorRecorder
) -> None:
    project = write_project(tmp_path / "p")
    cache = tmp_path / "cache"
    run_mypy(project, cache, *JSON_CACHE)
    assert pretend_written_by(cache, "2.3.0") > MODULES  # the stdlib's too
    run = run_mypy(project, cache, *JSON_CACHE)
    assert run.rechecked == EVERY
    assert run.abandoned == {"different mypy version": MODULES}
    line = next(
        line
        for line in run.log.splitlines()
        if "Metadata abandoned for app.m05:" in line
    )
    error_record(
        line.removeprefix("LOG:").strip(),
        id="different-mypy-version",
        component="mypy",
        version=version("mypy"),
    )
    # --skip-version-check trusts the other version's entries: nothing rechecked
    pretend_written_by(cache, "2.3.0")
    trusted = run_mypy(project, cache, *JSON_CACHE, "--skip-version-check")
    assert (trusted.rechecked, trusted.abandoned) == ((), {})


# --------------------------------------------------------------------------- #
# A second process and a crash
# --------------------------------------------------------------------------- #


LOCKED = "sqlite3.OperationalError: database is locked"


def test_two_cold_runs_on_one_cache_finish_or_crash_opening_it(tmp_path: Path) -> None:
    """Both open the new database at once: each either finishes, or dies
    opening it (``PRAGMA journal_mode=WAL`` in ``connect_db``, INTERNAL
    ERROR, exit status 2). Which one happens depends on timing; what follows
    does not: the runs that finish agree, and the cache is complete."""
    project = write_project(tmp_path / "p")
    cache = tmp_path / "cache"
    runs, crashes = together(project, cache, ("--show-traceback",))
    assert len(runs) + len(crashes) == 2
    assert runs, "at least one run finishes"
    for crash in crashes:
        assert "INTERNAL ERROR" in crash and "connect_db" in crash and LOCKED in crash
    assert [run.exit_code for run in runs] == [0] * len(runs)
    assert len({run.report for run in runs}) == 1
    assert run_mypy(project, cache).rechecked == ()  # complete, consistent


def test_a_cache_database_held_by_another_process_stops_mypy(
    tmp_path: Path, error_record: ErrorRecorder
) -> None:
    """The same death, made certain: another connection holds a write lock
    on a shard for longer than sqlite3's 5 s busy timeout."""
    project = write_project(tmp_path / "p")
    cache = tmp_path / "cache"
    shard = cache / "3.11" / "cache.0.db"  # the project pins python_version 3.11
    shard.parent.mkdir(parents=True)
    holder = sqlite3.connect(shard, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        with pytest.raises(RuntimeError) as crash:
            run_mypy(project, cache, "--show-traceback")
    finally:
        holder.close()
    text = str(crash.value)
    assert text.startswith("mypy failed (2)") and "connect_db" in text
    assert [line for line in text.splitlines() if line.startswith("sqlite3.")] == [
        LOCKED
    ]
    error_record(
        LOCKED,
        id="mypy-cache-locked",
        component="mypy",
        version=version("mypy"),
        section="trade-offs",
    )


def test_two_runs_one_at_a_time_on_one_cache_both_finish(tmp_path: Path) -> None:
    """The fix for a shared cache: a lock around each run (``flock``)."""
    project = write_project(tmp_path / "p")
    cache = tmp_path / "cache"
    runs, crashes = together(project, cache, (), one_at_a_time=True)
    assert crashes == []
    assert [run.exit_code for run in runs] == [0, 0]
    assert runs[0].report == runs[1].report
    cold, warm = runs  # the second to get the lock finds the first's cache
    assert (len(cold.rechecked), warm.rechecked) == (MODULES, ())


def test_a_killed_run_leaves_a_cache_the_next_run_repairs(tmp_path: Path) -> None:
    project = write_project(tmp_path / "p")
    cache = tmp_path / "cache"
    command = [sys.executable, "-m", "mypy", "--cache-dir", str(cache), "app"]
    process = subprocess.Popen(command, cwd=project, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not list(cache.glob("3.11/cache.*.db")) and time.monotonic() < deadline:
        if process.poll() is not None:
            break
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)  # mid-run, or just after: both are fine
    process.wait(timeout=30)
    again = run_mypy(project, cache)
    assert again.exit_code == 0
    assert run_mypy(project, cache).rechecked == ()


def test_an_error_is_reported_from_the_cache_too(warm: tuple[Path, Path]) -> None:
    project, cache = warm
    break_types(project)
    first = run_mypy(project, cache)
    second = run_mypy(project, cache)  # nothing changed: served from the cache
    assert first.exit_code == second.exit_code == 1
    assert (first.rechecked, second.rechecked) == (("app.m05",), ())
    assert first.report == second.report


# --------------------------------------------------------------------------- #
# dmypy
# --------------------------------------------------------------------------- #


def test_the_daemon_is_stopped_even_when_the_loop_fails(tmp_path: Path) -> None:
    project = write_project(tmp_path / "p")
    status_file = tmp_path / "dmypy.json"
    pid = 0
    crashed = pytest.raises(RuntimeError, match="editor crashed")
    with crashed, mypy_daemon(project, status_file) as daemon:
        assert daemon.run("app")[0] == 0
        assert daemon.status()[0] == 0
        pid = json.loads(status_file.read_text())["pid"]
        break_types(project)
        code, out = daemon.run("app")
        assert code == 1 and "app/m05.py:5: error: Incompatible return" in out
        raise RuntimeError("editor crashed")
    assert not status_file.exists()
    assert daemon.status()[0] == 2
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"dmypy (pid {pid}) still runs")


# --------------------------------------------------------------------------- #
# ruff
# --------------------------------------------------------------------------- #


def test_ruff_relints_only_what_changed_and_keys_on_mtime(tmp_path: Path) -> None:
    project, cache = write_project(tmp_path / "p"), tmp_path / "cache"
    assert len(run_ruff(project, cache, paths=("app",)).linted) == MODULES
    assert run_ruff(project, cache, paths=("app",)).linted == ()
    (project / "app" / "m03.py").touch()  # same content, new mtime
    assert run_ruff(project, cache, paths=("app",)).linted == ("app/m03.py",)
    assert [p.name for p in cache.iterdir() if p.is_dir()] == [version("ruff")]


def test_ruff_never_caches_a_file_with_findings(tmp_path: Path) -> None:
    project, cache = write_project(tmp_path / "p"), tmp_path / "cache"
    (project / "app" / "m04.py").write_text("import os\n")  # F401
    for _ in range(2):
        run = run_ruff(project, cache, paths=("app",))
        assert run.exit_code == 1
    assert run.linted == ("app/m04.py",)


def test_ruff_cache_location_flag_env_and_no_cache(tmp_path: Path) -> None:
    project = write_project(tmp_path / "p")
    run_ruff(project, None, paths=("app",))
    assert not (project / ".ruff_cache").exists()  # --no-cache writes nothing
    elsewhere = tmp_path / "ruff-cache"
    run = run_ruff(project, None, paths=("app",))
    env = {"RUFF_CACHE_DIR": str(elsewhere)}
    cmd = [sys.executable, "-m", "ruff", "check", "app"]
    subprocess.run(cmd, cwd=project, env={**os.environ, **env}, check=True)
    assert (elsewhere / version("ruff")).is_dir()
    assert not (project / ".ruff_cache").exists()
    subprocess.run(cmd, cwd=project, check=True)
    assert (project / ".ruff_cache" / version("ruff")).is_dir()  # the default
    assert len(run.linted) == MODULES


# --------------------------------------------------------------------------- #
# The GitHub Actions job the page shows
# --------------------------------------------------------------------------- #


def steps() -> list[dict[str, object]]:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    job: dict[str, list[dict[str, object]]] = workflow["jobs"]["mypy"]
    return job["steps"]


def test_workflow_pins_actions_and_passes_zizmor() -> None:
    uses = [str(step["uses"]) for step in steps() if "uses" in step]
    assert uses and all(len(use.partition("@")[2]) == 40 for use in uses)
    zizmor = shutil.which("zizmor", path=str(Path(sys.executable).parent))
    if zizmor is None:
        unavailable("zizmor", "it is pinned in requirements/snippets.lock")
    result = subprocess.run(
        [zizmor, "--offline", "--no-progress", str(WORKFLOW)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings to report" in result.stdout + result.stderr


def test_workflow_cache_key_names_os_python_lock_and_config(tmp_path: Path) -> None:
    by_id = {step.get("id"): step for step in steps()}
    key_step = by_id["mypy-key"]
    env = key_step["env"]
    assert isinstance(env, dict)
    assert env["PYTHON"] == "${{ steps.python.outputs.python-version }}"
    hashed = [value for value in env.values() if "hashFiles" in value]
    files = [value.split("'")[1] for value in hashed]
    assert files == ["requirements/lint.lock", "pyproject.toml"]
    assert f"mypy=={version('mypy')}" in (ROOT / files[0]).read_text()
    assert "[tool.mypy]" in (ROOT / files[1]).read_text()
    output = tmp_path / "github_output"
    values = {"PYTHON": "3.11.9", "LOCK": "ab12", "CONFIG": "cd34"}
    values |= {"RUNNER_OS": "Linux", "GITHUB_OUTPUT": str(output)}
    subprocess.run(
        ["bash", "-e", "-c", str(key_step["run"])],
        env={**os.environ, **values},
        check=True,
        timeout=10,
    )
    assert output.read_text() == "prefix=mypy-Linux-py3.11.9-ab12-cd34-\n"
    uses = {str(step.get("uses", "")).partition("@")[0]: step for step in steps()}
    cache = uses["actions/cache"]
    settings = cache["with"]
    assert isinstance(settings, dict)
    assert settings["path"] == ".mypy_cache"  # mypy's default --cache-dir
    prefix = "${{ steps.mypy-key.outputs.prefix }}"
    assert settings["restore-keys"] == prefix
    assert settings["key"] == prefix + "${{ github.sha }}"  # saved on every commit
