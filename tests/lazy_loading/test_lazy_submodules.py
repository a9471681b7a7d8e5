"""Tests for snippets/lazy_loading/lazy_submodules.py and its toolkit package.

Each test builds its own package under tmp_path with a unique name, so the
import system's state (sys.modules, module locks) is fresh. The package's
`__init__.py` is the shipped toolkit/__init__.py with another list of names.
Submodules report to a probe module: how often their body ran, and where
threads wait for each other.
"""

from __future__ import annotations

import platform
import sys
import threading
import types
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from snippets.lazy_loading.lazy_submodules import modules_imported_by
from snippets.support.lazy_loading_packages import (
    BUGGY,
    CYCLE,
    PLAIN_INIT,
    Packages,
    deadlocks,
    probe_three_ways,
    run_together,
    scratch_packages,
    touch_a_and_b,
)
from tools.errors import ErrorRecorder

THREADS = 16


@pytest.fixture
def packages(tmp_path: Path) -> Iterator[Packages]:
    with scratch_packages(tmp_path) as made:
        yield made


# -- import pkg stays cheap ------------------------------------------------- #


def test_import_package_does_not_import_the_heavy_submodule() -> None:
    package = "snippets.lazy_loading.toolkit"
    cheap = modules_imported_by(f"import {package}")
    used = modules_imported_by(f"import {package}; {package}.heavy.square(3)")
    assert package in cheap
    assert f"{package}.heavy" not in cheap
    assert "decimal" not in cheap  # heavy's own dependency waits too
    assert f"{package}.heavy" in used
    assert "decimal" in used


def test_first_access_imports_once_and_binds_the_attribute(packages: Packages) -> None:
    pkg, probe = packages.make(["heavy"], {"heavy": "VALUE = 42\n"})
    assert probe.runs["heavy"] == 0
    assert pkg.heavy.VALUE == 42
    assert probe.runs["heavy"] == 1
    assert "heavy" in vars(pkg)  # later reads never reach __getattr__
    assert pkg.heavy is sys.modules[f"{pkg.__name__}.heavy"]
    assert probe.runs["heavy"] == 1


def test_dir_lists_lazy_names_without_importing_them(packages: Packages) -> None:
    pkg, probe = packages.make(["heavy", "report"], {"heavy": "", "report": ""})
    names = dir(pkg)
    assert {"heavy", "report", "prewarm"} <= set(names)
    assert names == sorted(names)
    assert probe.runs == Counter()


def test_unknown_name_is_an_attribute_error(packages: Packages) -> None:
    pkg, probe = packages.make(["heavy"], {"heavy": ""})
    assert not hasattr(pkg, "heavvy")
    with pytest.raises(AttributeError, match="has no attribute 'heavvy'"):
        getattr(pkg, "heavvy")  # noqa: B009  (the name is the point)
    assert probe.runs == Counter()


def test_prewarm_imports_every_lazy_submodule_now(packages: Packages) -> None:
    pkg, probe = packages.make(["b", "a"], {"a": "", "b": ""})
    loaded = pkg.prewarm()
    assert [module.__name__ for module in loaded] == [
        f"{pkg.__name__}.a",
        f"{pkg.__name__}.b",
    ]
    assert probe.runs == Counter({"a": 1, "b": 1})


# -- see it break: a bug in the submodule disappears -------------------------- #


def test_plain_getattr_turns_a_bug_into_a_missing_attribute(
    packages: Packages,
) -> None:
    pkg, probe = packages.make(["heavy"], {"heavy": BUGGY}, init=PLAIN_INIT)
    lines = probe_three_ways(pkg, probe)
    assert lines[0].endswith("-> False")  # the bug reads as "no such name"
    assert lines[1].endswith("-> None")
    assert lines[2].endswith("-> AttributeError")
    assert probe.runs["heavy"] == 4  # the from-import ran the body twice


def test_lazy_submodules_reports_the_bug_as_an_import_error(
    packages: Packages,
) -> None:
    pkg, probe = packages.make(["heavy"], {"heavy": BUGGY})
    with pytest.raises(ImportError, match=r"importing .*heavy failed") as caught:
        hasattr(pkg, "heavy")
    assert isinstance(caught.value.__cause__, AttributeError)
    lines = probe_three_ways(pkg, probe)
    assert all("ImportError" in line for line in lines[:3])
    assert probe.runs["heavy"] == 4  # one run per attempt, as an eager import


def test_racing_first_touches_run_the_submodule_once(packages: Packages) -> None:
    # heavy's body waits up to 0.5 s for other threads inside it; none come,
    # because they wait on the import lock for the module meanwhile.
    body = "probe.meet()\nVALUE = object()\n"
    pkg, probe = packages.make(["heavy"], {"heavy": body})
    probe.meeting = threading.Barrier(THREADS, timeout=0.5)
    results = run_together([lambda: pkg.heavy] * THREADS)
    assert not [r for r in results if isinstance(r, BaseException)]
    assert probe.runs["heavy"] == 1
    assert len({id(module) for module in results}) == 1
    print(f"{THREADS} threads, heavy ran {probe.runs['heavy']} time(s)")


def test_first_touching_an_import_cycle_from_two_threads_deadlocks(
    packages: Packages,
) -> None:
    pkg, probe = packages.make(["a", "b"], CYCLE)
    probe.meeting = threading.Barrier(2, timeout=5)  # each holds its module's lock
    results = touch_a_and_b(pkg)
    found = deadlocks(results)
    print(*map(repr, results), sep="\n")
    assert len(found) >= 1  # detected and raised, not a hang
    assert "deadlock detected by _ModuleLock(" in str(found[0])
    assert not isinstance(found[0], ImportError)  # catch RuntimeError, not this
    assert all(isinstance(r, types.ModuleType) for r in results if r not in found)


def test_prewarm_in_one_thread_before_the_workers_start(packages: Packages) -> None:
    pkg, probe = packages.make(["a", "b"], CYCLE)
    pkg.prewarm()  # one thread, one lock owner: the cycle resolves as usual
    probe.meeting = threading.Barrier(2, timeout=5)
    results = touch_a_and_b(pkg)
    assert deadlocks(results) == []
    assert all(isinstance(r, types.ModuleType) for r in results)
    assert probe.runs == Counter({"a": 1, "b": 1})


NAME_CYCLE = {
    "a": "from {pkg}.b import helper\ndef name() -> int:\n    return 1\n",
    "b": "from {pkg}.a import name\ndef helper() -> int:\n    return name()\n",
}


def test_a_from_import_cycle_fails_in_one_thread(
    packages: Packages, error_record: ErrorRecorder
) -> None:
    """`from pkg.a import name` at import time needs `name` to exist already."""
    pkg, _ = packages.make(["a", "b"], NAME_CYCLE)
    with pytest.raises(ImportError) as error:
        pkg.prewarm()  # one thread: no deadlock, but `a` is half-initialized
    message = str(error.value)
    print(message)
    module = f"'{pkg.__name__}.a'"
    assert message.startswith(
        f"cannot import name 'name' from partially initialized module {module}"
    )
    assert "(most likely due to a circular import)" in message
    error_record(
        error.value,
        id="cannot-import-name",
        component="CPython",
        version=platform.python_version(),
        section="problem",
        names={pkg.__name__: "pkg"},
    )
