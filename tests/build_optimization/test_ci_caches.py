"""Tests for snippets/build_optimization/ci_caches/.

The real pip installs small generated wheels from a package index on
127.0.0.1 (``http.server``) into venvs below a temporary "workspace", each
run with its own ``PIP_CACHE_DIR``. What happened is counted: the GETs the
index answered, by kind and status, and what pip printed it installed or
took from its cache. A venv is saved and restored with ``tar`` as
actions/cache does. The workflows the page shows are audited with zizmor.
Nothing is timed.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from snippets.build_optimization.ci_caches import (
    Install,
    LocalIndex,
    Request,
    installed_versions,
    new_venv,
    pip_check,
    pip_install,
    restore_cache,
    save_cache,
    serve_index,
    venv_links,
)
from snippets.build_optimization.ci_caches.demo import run, tool_cache_python
from snippets.build_optimization.ci_caches.sample import (
    LOCK_1,
    LOCK_2,
    find_python,
    write_lock,
    write_wheels,
)
from snippets.support.services import ServiceUnavailable
from tests.conftest import ROOT, unavailable
from tests.workflows import unpinned_actions, zizmor_executable, zizmor_findings
from tools.errors import ErrorRecorder

pytestmark = pytest.mark.timeout(120)

HERE = ROOT / "snippets/build_optimization/ci_caches"
WORKFLOWS = {"pip": HERE / "pip-cache.yml", "venv": HERE / "venv-cache.yml"}
PACKAGES = len(LOCK_1)


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalIndex]:
    with serve_index(write_wheels(tmp_path_factory.mktemp("wheels"))) as index:
        yield index


@dataclass(frozen=True)
class Built:
    """One cold install of lock 1 into ``ws/.venv``, saved as a cache archive."""

    ws: Path
    lock: Path
    archive: Path
    pip_cache: Path
    cold: Install
    gets: dict[Request, int]


@pytest.fixture(scope="module")
def built(index: LocalIndex, tmp_path_factory: pytest.TempPathFactory) -> Built:
    root = tmp_path_factory.mktemp("built")
    ws, pip_cache = root / "ws", root / "pip-cache"
    lock = write_lock(ws / "requirements.lock", LOCK_1)
    cold, gets = install(index, ws / ".venv", lock, pip_cache)
    save_cache(ws, ".venv", root / "venv.tar")
    shutil.rmtree(ws / ".venv")
    return Built(ws, lock, root / "venv.tar", pip_cache, cold, gets)


@pytest.fixture
def restored(built: Built) -> Path:
    """The venv restored at the path it was built at (this test's own copy)."""
    shutil.rmtree(built.ws / ".venv", ignore_errors=True)
    restore_cache(built.archive, built.ws)
    return built.ws / ".venv"


def install(
    index: LocalIndex, venv: Path, lock: Path, cache: Path
) -> tuple[Install, dict[Request, int]]:
    """Install ``lock`` into ``venv`` (created if missing); the GETs it took."""
    if not venv.exists():
        new_venv(venv)
    index.take()
    done = pip_install(venv / "bin" / "python", lock, index.url, cache)
    return done, dict(index.take())


def python_or_skip(minor: str) -> str:
    try:
        return find_python(minor)
    except ServiceUnavailable as error:
        unavailable(f"Python {minor}", str(error))


# --------------------------------------------------------------------------- #
# pip's download cache, and a restored venv
# --------------------------------------------------------------------------- #


def test_a_warm_download_cache_saves_downloads_not_installs(
    index: LocalIndex, built: Built, tmp_path: Path
) -> None:
    assert built.gets == {("page", 200): PACKAGES, ("file", 200): PACKAGES}
    assert len(built.cold.installed) == PACKAGES and built.cold.from_cache == 0
    cache = shutil.copytree(built.pip_cache, tmp_path / "pip-cache")
    # the next CI run: a new venv, the download cache restored
    warm, gets = install(index, tmp_path / "ws" / ".venv", built.lock, cache)
    assert gets == {("page", 304): PACKAGES}  # revalidated pages, no file GET
    assert warm.installed == built.cold.installed  # every package installed again
    assert warm.from_cache == PACKAGES


def test_a_venv_restored_at_the_same_path_needs_no_get_and_no_install(
    index: LocalIndex, built: Built, restored: Path, tmp_path: Path
) -> None:
    again, gets = install(index, restored, built.lock, tmp_path / "empty-cache")
    assert gets == {}
    assert (again.installed, again.already_satisfied) == ((), PACKAGES)
    assert pip_check(restored / "bin" / "python") == (
        0,
        "No broken requirements found.",
    )
    links = venv_links(restored)
    assert links.python_exists
    assert links.shebangs == {"cli-tool": str(restored / "bin" / "python")}
    assert run(f"{restored}/bin/cli-tool") == (0, "ok")


def test_a_damaged_download_cache_costs_downloads_not_the_install(
    index: LocalIndex, built: Built, tmp_path: Path
) -> None:
    cache = shutil.copytree(built.pip_cache, tmp_path / "pip-cache")
    entries = [path for path in cache.rglob("*") if path.is_file()]
    assert entries
    for path in entries:  # a cache archive cut short on the way back
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    again, gets = install(index, tmp_path / "ws" / ".venv", built.lock, cache)
    assert len(again.installed) == PACKAGES
    assert gets.get(("file", 200)) == PACKAGES  # downloaded again
    assert again.from_cache == 0


def test_two_installs_on_one_download_cache_both_succeed(
    index: LocalIndex, built: Built, tmp_path: Path
) -> None:
    cache = tmp_path / "pip-cache"  # two jobs of one self-hosted runner
    venvs = [tmp_path / f"ws-{n}" / ".venv" for n in (1, 2)]
    for venv in venvs:
        new_venv(venv)

    def one(venv: Path) -> Install:
        return pip_install(venv / "bin" / "python", built.lock, index.url, cache)

    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(one, venvs))
    assert [run.installed for run in runs] == [built.cold.installed] * 2


# --------------------------------------------------------------------------- #
# The hazards of a restored venv
# --------------------------------------------------------------------------- #


def test_a_venv_restored_in_another_workspace_breaks_its_scripts(
    built: Built, tmp_path: Path, error_record: ErrorRecorder
) -> None:
    shutil.rmtree(built.ws / ".venv", ignore_errors=True)  # another runner
    other = tmp_path / "other"
    restore_cache(built.archive, other)
    links = venv_links(other / ".venv")
    assert links.python_exists  # the base interpreter did not move
    assert run(f"{other}/.venv/bin/python -c 'import dependency_0'")[0] == 0
    assert links.shebangs["cli-tool"] == str(built.ws / ".venv" / "bin" / "python")
    code, message = run(f"{other}/.venv/bin/cli-tool")
    assert code == 127
    assert message.endswith("cli-tool: cannot execute: required file not found")
    error_record(
        message,
        id="script-interpreter-gone",
        component="bash",
        version=bash_version(),
    )
    with pytest.raises(FileNotFoundError) as raised:
        subprocess.run([other / ".venv" / "bin" / "cli-tool"], timeout=60)
    # Python names the script, which exists, not the interpreter that does not
    assert str(raised.value.filename) == str(other / ".venv" / "bin" / "cli-tool")


def test_a_new_patch_release_leaves_the_venv_python_dangling(
    tmp_path: Path, error_record: ErrorRecorder
) -> None:
    tool_cache, ws = tmp_path / "hostedtoolcache", tmp_path / "ws"
    old = tool_cache_python(tool_cache, python_or_skip("3.11"), "3.11.9")
    new_venv(ws / ".venv", str(old))
    links = venv_links(ws / ".venv")
    assert (links.home, links.python, links.python_exists) == (
        str(old.parent),
        str(old),
        True,
    )
    save_cache(ws, ".venv", tmp_path / "venv.tar")
    shutil.rmtree(ws / ".venv")
    (tool_cache / "Python" / "3.11.9").rename(tool_cache / "Python" / "3.11.10")
    restore_cache(tmp_path / "venv.tar", ws)
    links = venv_links(ws / ".venv")
    assert links.python == str(old) and not links.python_exists
    code, message = run(f"{ws}/.venv/bin/python -c 'import dependency_0'")
    assert code == 127
    assert message.endswith(".venv/bin/python: No such file or directory")
    error_record(
        message,
        id="venv-python-gone",
        component="bash",
        version=bash_version(),
    )


def test_a_venv_of_another_minor_version_stays_on_it(
    index: LocalIndex, built: Built, tmp_path: Path, error_record: ErrorRecorder
) -> None:
    python311, python312 = python_or_skip("3.11"), python_or_skip("3.12")
    venv = tmp_path / "ws" / ".venv"
    new_venv(venv, python311)
    install(index, venv, built.lock, built.pip_cache)
    probe = "import sys; print('%d.%d' % sys.version_info[:2])"
    assert run(f"{venv}/bin/python -c {probe!r}") == (0, "3.11")  # not 3.12
    new_venv(venv, python312)  # over the restored one
    assert venv_links(venv).version == "3.12"
    assert run(f"{venv}/bin/python -c {probe!r}") == (0, "3.11")  # still
    assert (venv / "lib" / "python3.12" / "site-packages").is_dir()
    result = subprocess.run(
        [venv / "bin" / "python3.12", "-c", "import dependency_0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    error_record(
        result.stderr.strip().splitlines()[-1],
        id="module-not-found",
        component="CPython",
        version=run(f"{venv}/bin/python3.12 -V")[1].split()[1],
    )


def test_restore_keys_bring_back_a_package_the_lock_dropped(
    index: LocalIndex, built: Built, restored: Path, tmp_path: Path
) -> None:
    lock_2 = write_lock(tmp_path / "requirements.lock", LOCK_2)
    # a prefix match restored lock 1's venv: cache-hit is false, install runs
    update, _ = install(index, restored, lock_2, tmp_path / "pip-cache")
    assert update.installed == ("dependency_0-1.1",)
    have = installed_versions(restored / "bin" / "python")
    assert {name: have[name] for name in LOCK_2} == LOCK_2
    assert sorted(set(have) - set(LOCK_2)) == ["legacy"]  # stale, and importable
    assert run(f"{restored}/bin/python -c 'import legacy'")[0] == 0
    assert pip_check(restored / "bin" / "python")[0] == 0  # pip check is fine


def bash_version() -> str:
    out = subprocess.run(["bash", "--version"], capture_output=True, text=True)
    return out.stdout.split()[3].split("(")[0]


# --------------------------------------------------------------------------- #
# The workflows the page shows
# --------------------------------------------------------------------------- #


def steps(name: str) -> list[dict[str, object]]:
    workflow = yaml.safe_load(WORKFLOWS[name].read_text())
    job: dict[str, list[dict[str, object]]] = workflow["jobs"]["test"]
    return job["steps"]


def uses(name: str) -> dict[str, dict[str, object]]:
    return {
        str(step["uses"]).partition("@")[0]: step
        for step in steps(name)
        if "uses" in step
    }


@pytest.mark.parametrize("name", sorted(WORKFLOWS))
def test_workflow_pins_actions_and_passes_zizmor(name: str) -> None:
    assert not unpinned_actions(WORKFLOWS[name])
    assert uses(name)  # there are actions to pin
    zizmor = zizmor_executable()
    if zizmor is None:
        unavailable("zizmor", "it is pinned in requirements/snippets.lock")
    findings = zizmor_findings(WORKFLOWS[name], zizmor)
    assert findings is None, findings


def matches(pattern: str) -> list[str]:
    """The files of this repository that a hashFiles() glob matches."""
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    # @actions/glob: ** is any number of folders, none included
    alternatives = {pattern, pattern.replace("**/", "*/"), pattern.removeprefix("**/")}
    return sorted(
        path
        for path in tracked
        if any(fnmatch.fnmatchcase(path, other) for other in alternatives)
    )


def test_setup_python_hashes_the_lock_not_what_the_default_finds() -> None:
    settings = uses("pip")["actions/setup-python"]["with"]
    assert isinstance(settings, dict) and settings["cache"] == "pip"
    assert matches(settings["cache-dependency-path"]) == ["requirements/test.lock"]
    # setup-python 6.0.0's defaults: **/requirements.txt, else **/pyproject.toml
    assert matches("**/requirements.txt") == [
        "snippets/container_orchestration/manifests/requirements.txt"
    ]


def test_venv_key_names_os_arch_exact_python_and_lock(tmp_path: Path) -> None:
    by_id = {step.get("id"): step for step in steps("venv")}
    env = by_id["venv-key"]["env"]
    assert isinstance(env, dict)
    assert env["PYTHON"] == "${{ steps.setup-python.outputs.python-version }}"
    assert env["LOCK"] == "${{ hashFiles('requirements/test.lock') }}"
    assert matches("requirements/test.lock") == ["requirements/test.lock"]
    output = tmp_path / "github_output"
    values = {"OS": "ubuntu-24.04", "PYTHON": "3.12.8", "LOCK": "ab12"}
    values |= {"RUNNER_ARCH": "X64", "GITHUB_OUTPUT": str(output)}
    subprocess.run(
        ["bash", "-e", "-c", str(by_id["venv-key"]["run"])],
        env={**os.environ, **values},
        check=True,
        timeout=10,
    )
    assert output.read_text() == "key=venv-ubuntu-24.04-X64-py3.12.8-ab12\n"
    cache = uses("venv")["actions/cache"]
    assert cache["id"] == "venv"
    settings = cache["with"]
    assert isinstance(settings, dict)
    assert settings == {"path": ".venv", "key": "${{ steps.venv-key.outputs.key }}"}
    create = next(step for step in steps("venv") if "python -m venv" in str(step))
    assert create["if"] == "steps.venv.outputs.cache-hit != 'true'"
