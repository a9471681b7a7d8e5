"""Tests for snippets/lazy_loading/lazy_loader.py.

Every test writes its own modules with unique names to tmp_path. A module's
body reports to a probe module, and a "slow" body blocks on the probe's event
until the test releases it: that holds the first load open while a second
thread reads the module, so the gh-114763 race happens on every run.

The race itself depends on the interpreter: CPython 3.11.7 and 3.12.1 (the
.venv and .venv-3.12 here) predate the fix, 3.13.0 has it. The tests assert
what each kind of interpreter does.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import platform
import re
import sys
import threading
import types
import uuid
from collections.abc import Callable, Iterator, Sequence
from importlib.machinery import ModuleSpec
from pathlib import Path

import pytest

from snippets.lazy_loading.lazy_loader import (
    LAZY_LOADER_IS_THREAD_SAFE,
    docs_recipe,
    has_lazy_loader_lock,
    lazy_import,
    warm,
)
from tools.errors import ErrorRecorder

SLOW = "probe.inside.set()\nprobe.release.wait(timeout=10)\nVALUE = 42\n"


class Probe(types.ModuleType):
    """Counts module bodies and holds a slow one open until released."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.runs = 0
        self.inside = threading.Event()
        self.release = threading.Event()
        self._lock = threading.Lock()

    def ran(self) -> None:
        with self._lock:
            self.runs += 1


class Modules:
    """Writes modules with unique names into a directory on sys.path."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.made: list[str] = []

    def make(self, body: str) -> tuple[str, Probe]:
        name = f"lzmod_{uuid.uuid4().hex[:10]}"
        probe = Probe(f"{name}_probe")
        sys.modules[probe.__name__] = probe
        self.made += [name, probe.__name__]
        text = f"import {probe.__name__} as probe\nprobe.ran()\n{body}"
        (self.root / f"{name}.py").write_text(text)
        importlib.invalidate_caches()
        return name, probe


@pytest.fixture
def modules(tmp_path: Path) -> Iterator[Modules]:
    sys.path.insert(0, str(tmp_path))
    made = Modules(tmp_path)
    try:
        yield made
    finally:
        sys.path.remove(str(tmp_path))
        for name in made.made:
            sys.modules.pop(name, None)


# -- the version gate --------------------------------------------------------- #


@pytest.mark.parametrize(
    ("release", "locked"),
    [
        ((3, 10, 14), False),
        ((3, 11, 7), False),
        ((3, 11, 8), False),
        ((3, 11, 9), True),
        ((3, 11, 15), True),
        ((3, 12, 1), False),
        ((3, 12, 2), False),
        ((3, 12, 3), True),
        ((3, 13, 0), True),
        ((3, 14, 2), True),
    ],
)
def test_version_gate(release: tuple[int, int, int], locked: bool) -> None:
    assert has_lazy_loader_lock(release) is locked


# -- see it break: a second thread during the first load ------------------------ #


def second_reader(name: str, probe: Probe, get: Callable[[], object]) -> list[str]:
    """Thread A starts the first load and is held inside the module's body.
    Thread B then reads the module. Returns what B saw, and when."""
    seen: dict[str, object] = {}

    def read(who: str) -> None:
        try:
            seen[who] = getattr(get(), "VALUE")  # noqa: B009
        except AttributeError as error:
            seen[who] = error

    a = threading.Thread(target=read, args=("A",))
    a.start()
    assert probe.inside.wait(timeout=5), "thread A never started the load"
    b = threading.Thread(target=read, args=("B",))
    b.start()
    b.join(timeout=1.0)  # a reader that fails does so at once
    b_waited = b.is_alive()
    probe.release.set()
    for thread in (a, b):
        thread.join(timeout=10)
        assert not thread.is_alive()
    print(f"Python {sys.version.split()[0]}: B waited: {b_waited}, saw {seen['B']!r}")
    return [f"A: {seen['A']!r}", f"B waited: {b_waited}", f"B: {seen['B']!r}"]


def test_docs_recipe_lets_a_second_thread_see_a_half_run_module(
    modules: Modules, error_record: ErrorRecorder
) -> None:
    name, probe = modules.make(SLOW)
    module = docs_recipe(name)
    seen = second_reader(name, probe, lambda: module)
    assert seen[0] == "A: 42"
    if LAZY_LOADER_IS_THREAD_SAFE:  # 3.11.9+, 3.12.3+, 3.13: B waits for A
        assert seen[1:] == ["B waited: True", "B: 42"]
    else:  # 3.11.7 and 3.12.1 here: B reads the module while its body runs
        assert seen[1] == "B waited: False"
        assert f"module '{name}' has no attribute 'VALUE'" in seen[2]
        said = re.fullmatch(r'B: AttributeError\("(.*)"\)', seen[2])
        assert said is not None, seen[2]
        error_record(
            f"AttributeError: {said[1]}",
            id="half-run-module",
            component="CPython",
            version=platform.python_version(),
            names={name: "lzmod_<name>"},
        )
    assert probe.runs == 1


def test_lazy_import_makes_the_second_thread_wait(modules: Modules) -> None:
    name, probe = modules.make(SLOW)
    seen = second_reader(name, probe, lambda: lazy_import(name))
    assert seen == ["A: 42", "B waited: True", "B: 42"]
    assert probe.runs == 1


def test_lazy_import_is_eager_only_where_the_lock_is_missing(
    modules: Modules,
) -> None:
    name, probe = modules.make("VALUE = 42\n")
    module = lazy_import(name)
    assert probe.runs == (0 if LAZY_LOADER_IS_THREAD_SAFE else 1)
    assert module.VALUE == 42
    assert probe.runs == 1


def test_lazy_import_defers_the_body_to_the_first_attribute_read(
    modules: Modules,
) -> None:
    name, probe = modules.make("VALUE = 42\n")
    module = lazy_import(name, eager_if_unsafe=False)
    assert type(module).__name__ == "_LazyModule"
    assert name in sys.modules
    assert probe.runs == 0
    assert module.VALUE == 42
    assert module.VALUE == 42
    assert probe.runs == 1
    assert type(module) is types.ModuleType


def test_a_plain_import_elsewhere_loads_it_there(modules: Modules) -> None:
    name, probe = modules.make("VALUE = 42\n")
    lazy_import(name, eager_if_unsafe=False)
    assert probe.runs == 0
    importlib.import_module(name)  # what `import name` does in other code
    assert probe.runs == 1


def test_a_from_import_cannot_stay_lazy(modules: Modules) -> None:
    name, probe = modules.make("VALUE = 42\n")
    lazy_import(name, eager_if_unsafe=False)
    namespace: dict[str, object] = {}
    exec(f"from {name} import VALUE", namespace)
    assert namespace["VALUE"] == 42
    assert probe.runs == 1


def test_a_package_that_uses_lazy_import_can_be_a_parent(
    modules: Modules, tmp_path: Path
) -> None:
    helper, helper_probe = modules.make("VALUE = 42\n")
    package = f"lzparent_{uuid.uuid4().hex[:10]}"
    modules.made.append(package)
    (tmp_path / package).mkdir()
    (tmp_path / package / "__init__.py").write_text(
        "from snippets.lazy_loading.lazy_loader import lazy_import\n"
        f"HELPER = lazy_import({helper!r}, eager_if_unsafe=False)\n"
    )
    (tmp_path / package / "sub.py").write_text("VALUE = 7\n")
    importlib.invalidate_caches()
    made: list[types.ModuleType] = []
    # In a thread, so that a lock the package's import waits for shows as a
    # timeout here instead of hanging the test run.
    worker = threading.Thread(
        target=lambda: made.append(
            lazy_import(f"{package}.sub", eager_if_unsafe=False)
        ),
        daemon=True,
    )
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive(), "lazy_import deadlocked on its own lock"
    assert made[0].VALUE == 7
    assert helper_probe.runs == 0
    sys.modules.pop(f"{package}.sub", None)


# -- see it break: two threads ask for the same module at once ------------------- #


class HoldingLoader(importlib.machinery.SourceFileLoader):
    """Holds each creation of the module object until two have arrived.

    `module_from_spec` calls `create_module` without the global import lock
    (the finders run under it), so two creators can be inside at once.
    """

    meeting = threading.Barrier(2, timeout=0.5)

    def create_module(self, spec: ModuleSpec) -> types.ModuleType | None:
        try:
            self.meeting.wait()
        except threading.BrokenBarrierError:
            pass  # nobody else got this far: a lock kept the other one out
        return None  # the default module object


class HoldingFinder(importlib.abc.MetaPathFinder):
    """Finds one module with a HoldingLoader, and nothing else."""

    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.path = path
        self.meeting = threading.Barrier(2, timeout=0.5)

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> ModuleSpec | None:
        if fullname != self.name:
            return None
        loader = HoldingLoader(fullname, str(self.path))
        loader.meeting = self.meeting
        return importlib.util.spec_from_file_location(
            fullname, self.path, loader=loader
        )


def create_from_two_threads(
    modules: Modules, name: str, make: Callable[[str], types.ModuleType]
) -> list[types.ModuleType]:
    finder = HoldingFinder(name, modules.root / f"{name}.py")
    sys.meta_path.insert(0, finder)
    made: list[types.ModuleType] = []
    try:
        pool = [threading.Thread(target=lambda: made.append(make(name))) for _ in "ab"]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join(timeout=10)
            assert not thread.is_alive()
    finally:
        sys.meta_path.remove(finder)
    return made


def test_docs_recipe_from_two_threads_makes_two_modules(
    modules: Modules, error_record: ErrorRecorder
) -> None:
    name, probe = modules.make("VALUE = object()\n")
    made = create_from_two_threads(modules, name, docs_recipe)
    assert len({id(module) for module in made}) == 2
    (kept,) = [module for module in made if module is sys.modules[name]]
    (replaced,) = [module for module in made if module is not kept]
    assert kept.VALUE is not None
    with pytest.raises(ValueError, match=r"substituted in sys\.modules") as caught:
        replaced.VALUE  # noqa: B018  (a thread still holding the first copy)
    error_record(
        caught.value,
        id="substituted",
        component="CPython",
        version=platform.python_version(),
        names={name: "lzmod_<name>"},
    )
    assert probe.runs == 2  # the replaced copy ran the body before it failed


def test_lazy_import_from_two_threads_makes_one_module(modules: Modules) -> None:
    name, probe = modules.make("VALUE = object()\n")

    def make(name: str) -> types.ModuleType:
        return lazy_import(name, eager_if_unsafe=False)

    first, second = create_from_two_threads(modules, name, make)
    assert first is second
    assert first.VALUE is second.VALUE
    assert probe.runs == 1


def test_docs_recipe_replaces_an_imported_module(modules: Modules) -> None:
    name, probe = modules.make("VALUE = object()\n")
    original = importlib.import_module(name)
    assert lazy_import(name, eager_if_unsafe=False) is original
    copy = docs_recipe(name)
    assert copy is not original
    assert sys.modules[name] is copy
    assert copy.VALUE is not original.VALUE
    assert probe.runs == 2


# -- errors on first use ---------------------------------------------------------- #

BROKEN = "TITLE = 'report'\nimport no_such_module_for_lazy_tests\nVALUE = 42\n"


def test_a_failed_first_use_is_reported_on_every_later_read(
    modules: Modules,
) -> None:
    name, probe = modules.make(BROKEN)
    module = lazy_import(name, eager_if_unsafe=False)
    errors: list[BaseException] = []

    def first() -> None:
        try:
            module.VALUE  # noqa: B018
        except ImportError as error:
            errors.append(error)

    worker = threading.Thread(target=first)
    worker.start()
    worker.join(timeout=10)
    assert [type(error) for error in errors] == [ModuleNotFoundError]
    with pytest.raises(ImportError, match="failed on first use") as later:
        module.VALUE  # noqa: B018
    assert later.value.__cause__ is errors[0]
    assert name not in sys.modules
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module(name)  # a fresh attempt, not a half module
    assert probe.runs == 2


def test_warm_runs_the_body_now_and_raises_at_start_up(modules: Modules) -> None:
    good, good_probe = modules.make("VALUE = 42\n")
    bad, _ = modules.make(BROKEN)
    lazy_good = lazy_import(good, eager_if_unsafe=False)
    warm(lazy_good)
    assert good_probe.runs == 1
    with pytest.raises(ModuleNotFoundError, match="no_such_module_for_lazy_tests"):
        warm(lazy_import(bad, eager_if_unsafe=False))


def test_the_loader_still_serves_source_and_metadata(modules: Modules) -> None:
    name, _ = modules.make("VALUE = 42\n")
    module = lazy_import(name, eager_if_unsafe=False)
    loader = module.__loader__  # the wrapper: reading it runs the body
    source = getattr(loader, "get_source")(name)  # noqa: B009  (delegated)
    assert "VALUE = 42" in source
    spec = module.__spec__
    assert spec is not None
    assert spec.name == name


def test_missing_module_raises_when_created() -> None:
    with pytest.raises(ModuleNotFoundError):
        lazy_import("no_such_module_for_lazy_tests", eager_if_unsafe=False)


# -- the output the page shows ---------------------------------------------------- #
