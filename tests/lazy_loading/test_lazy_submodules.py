"""Tests for snippets/lazy_loading/lazy_submodules.py and its toolkit package.

Each test builds its own package under tmp_path with a unique name, so the
import system's state (sys.modules, module locks) is fresh. The package's
`__init__.py` is the shipped toolkit/__init__.py with another list of names.
Submodules report to a probe module: how often their body ran, and where
threads wait for each other.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import threading
import types
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from snippets.lazy_loading.lazy_submodules import demo, modules_imported_by
from tests.conftest import ROOT, OutputCheck

TOOLKIT = ROOT / "snippets" / "lazy_loading" / "toolkit"
TOOLKIT_INIT = (TOOLKIT / "__init__.py").read_text()
PLAIN_INIT = """\
from snippets.lazy_loading.lazy_submodules import plain_getattr
__getattr__ = plain_getattr(__name__, {names!r})
"""
THREADS = 16


class Probe(types.ModuleType):
    """A module the fixture submodules import to report what happened."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.runs: Counter[str] = Counter()
        self.meeting: threading.Barrier | None = None
        self._meets = 0
        self._lock = threading.Lock()

    def ran(self, module: str) -> None:
        with self._lock:
            self.runs[module.rpartition(".")[2]] += 1

    def meet(self) -> None:
        """Hold the first racers inside their bodies until all have arrived.

        Only the first `meeting.parties` calls wait; a body that runs again
        later (after a failed import) passes straight through.
        """
        meeting = self.meeting
        with self._lock:
            self._meets += 1
            first = self._meets <= (meeting.parties if meeting else 0)
        if meeting is None or not first:
            return
        try:
            meeting.wait()
        except threading.BrokenBarrierError:
            pass  # the barrier's timeout: fewer racers got in


class Packages:
    """Writes packages with unique names to a directory on sys.path."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.made: list[str] = []

    def make(
        self, lazy: list[str], modules: dict[str, str], init: str | None = None
    ) -> tuple[types.ModuleType, Probe]:
        name = f"lzpkg_{uuid.uuid4().hex[:10]}"
        probe = Probe(f"{name}_probe")
        sys.modules[probe.__name__] = probe
        self.made += [name, probe.__name__]
        if init is None:
            assert '["heavy"]' in TOOLKIT_INIT
            init = TOOLKIT_INIT.replace('["heavy"]', repr(lazy))
        else:
            init = init.format(names=lazy)
        package = self.root / name
        package.mkdir()
        (package / "__init__.py").write_text(init)
        for module, body in modules.items():
            text = f"import {probe.__name__} as probe\nprobe.ran(__name__)\n{body}"
            (package / f"{module}.py").write_text(text.format(pkg=name))
        importlib.invalidate_caches()
        return importlib.import_module(name), probe


@pytest.fixture
def packages(tmp_path: Path) -> Iterator[Packages]:
    sys.path.insert(0, str(tmp_path))
    made = Packages(tmp_path)
    try:
        yield made
    finally:
        sys.path.remove(str(tmp_path))
        for name in list(sys.modules):
            if name.partition(".")[0] in made.made:
                del sys.modules[name]


def run_together(targets: list[Callable[[], object]]) -> list[object]:
    """Run each target on its own thread, all released at once.

    Returns what each returned or raised, in target order.
    """
    start = threading.Barrier(len(targets))
    results: list[object] = [None] * len(targets)

    def worker(index: int) -> None:
        start.wait(timeout=5)
        try:
            results[index] = targets[index]()
        except Exception as error:
            results[index] = error

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(len(targets))]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=20)
        assert not thread.is_alive(), "a thread is stuck: an import deadlock?"
    return results


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

BUGGY = "import os\nSEPARATOR = os.sepp  # a typo: AttributeError at import\n"


def probe_three_ways(pkg: types.ModuleType, probe: Probe) -> list[str]:
    """hasattr, getattr with a default, and from-import, as callers use them."""
    lines = []
    try:
        found: object = hasattr(pkg, "heavy")
    except ImportError as error:
        found = f"{type(error).__name__}: {error.__cause__}"
    lines.append(f"hasattr(pkg, 'heavy')        -> {found}")
    runs = [probe.runs["heavy"]]
    try:
        value: object = getattr(pkg, "heavy", None)
    except ImportError as error:
        value = type(error).__name__
    lines.append(f"getattr(pkg, 'heavy', None)  -> {value}")
    runs.append(probe.runs["heavy"])
    try:
        __import__(pkg.__name__, fromlist=["heavy"])
        outcome = "imported"
    except (ImportError, AttributeError) as error:
        outcome = type(error).__name__
    lines.append(f"from pkg import heavy        -> {outcome}")
    runs.append(probe.runs["heavy"])
    lines.append(f"body runs after each step    -> {', '.join(map(str, runs))}")
    return lines


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


def test_bug_output_matches_the_page(
    packages: Packages, expected_output: OutputCheck
) -> None:
    plain, plain_probe = packages.make(["heavy"], {"heavy": BUGGY}, init=PLAIN_INIT)
    lazy, lazy_probe = packages.make(["heavy"], {"heavy": BUGGY})
    lines = ["plain __getattr__ (the PEP 562 example):"]
    lines += [f"  {line}" for line in probe_three_ways(plain, plain_probe)]
    lines += ["LazySubmodules:"]
    lines += [f"  {line}" for line in probe_three_ways(lazy, lazy_probe)]
    expected_output("lazy_loading/lazy_submodules.bug", "\n".join(lines))


# -- threads ------------------------------------------------------------------ #


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


CYCLE = {
    "a": "probe.meet()\nfrom {pkg} import b\n",
    "b": "probe.meet()\nfrom {pkg} import a\n",
}


def touch_a_and_b(pkg: types.ModuleType) -> list[object]:
    return run_together([lambda: pkg.a, lambda: pkg.b])


def deadlocks(results: list[object]) -> list[RuntimeError]:
    return [
        r
        for r in results
        if isinstance(r, RuntimeError) and type(r).__name__ == "_DeadlockError"
    ]


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


def test_a_from_import_cycle_fails_in_one_thread(packages: Packages) -> None:
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


def test_cycle_output_matches_the_page(
    packages: Packages, expected_output: OutputCheck
) -> None:
    lines = []
    for label, warm in (("first touch from two threads", False), ("prewarm()", True)):
        pkg, probe = packages.make(["a", "b"], CYCLE)
        if warm:
            pkg.prewarm()
        probe.meeting = threading.Barrier(2, timeout=5)
        results = touch_a_and_b(pkg)
        found = deadlocks(results)
        lines.append(f"{label}: _DeadlockError raised: {bool(found)}")
        if found:
            error = found[0]
            base = type(error).__mro__[1].__name__
            is_import_error = isinstance(error, ImportError)
            lines.append(f"  subclass of {base}, of ImportError: {is_import_error}")
            lines.append(f"  message: {str(error).split('(')[0]}(...)")
    expected_output("lazy_loading/lazy_submodules.cycle", "\n".join(lines))


# -- the output the page shows ------------------------------------------------- #


def test_demo_output_matches_the_page(expected_output: OutputCheck) -> None:
    expected_output("lazy_loading/lazy_submodules.demo", "\n".join(demo()))


def test_module_runs_as_a_script() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "snippets.lazy_loading.lazy_submodules"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "loads toolkit, toolkit.heavy" in result.stdout
