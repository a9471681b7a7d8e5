"""Tests for snippets/code_splitting/import_hygiene.py.

Each attempt runs in a fresh interpreter, so every first import is really the
first. Two threads first-import the two ends of an import cycle at the same
moment; a barrier inside each module body makes the overlap happen every run.
"""

from __future__ import annotations

import builtins
import importlib
import platform
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from snippets.code_splitting.import_hygiene import (
    ImportExecutor,
    prewarm,
    tally,
    write_cycle_package,
)
from tools.errors import ErrorRecorder

RUNS = 10


MODES = ("naive", "prewarm", "executor")
STYLES = ("statement", "import_module")


@pytest.fixture(scope="module")
def outcomes(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[tuple[str, str], Counter[str]]:
    """RUNS child processes per mode and import style, their outcomes counted."""
    root = tmp_path_factory.mktemp("routes")
    return {(m, s): tally(root, m, s, runs=RUNS) for m in MODES for s in STYLES}


# How many runs overlap inside the 0.1 s window depends on scheduling, so the
# tests assert what holds on every run, not a split of failures and successes.


def test_import_statements_hand_out_a_partially_initialised_module(
    outcomes: dict[tuple[str, str], Counter[str]],
) -> None:
    found = outcomes["naive", "statement"]
    assert found["AttributeError"] >= 1
    assert set(found) <= {"AttributeError", "ok"}
    assert found.total() == 2 * RUNS


def test_import_module_in_a_body_raises_deadlock_error(
    outcomes: dict[tuple[str, str], Counter[str]],
) -> None:
    found = outcomes["naive", "import_module"]
    assert found["_DeadlockError"] >= 1
    assert set(found) <= {"_DeadlockError", "ok"}
    assert found.total() == 2 * RUNS


@pytest.mark.parametrize("mode", ["prewarm", "executor"])
@pytest.mark.parametrize("style", STYLES)
def test_fixes_leave_no_failed_request(
    outcomes: dict[tuple[str, str], Counter[str]], mode: str, style: str
) -> None:
    assert outcomes[mode, style] == Counter({"ok": 2 * RUNS})


def test_deadlock_error_is_a_runtime_error_not_an_import_error(
    tmp_path: Path, error_record: ErrorRecorder
) -> None:
    package = f"cycle_{tmp_path.name}"
    write_cycle_package(tmp_path, package, "import_module")
    sys.path.insert(0, str(tmp_path))
    start = threading.Barrier(2, timeout=10)
    errors: list[BaseException] = []

    def first_request(route: str) -> None:
        start.wait()
        try:
            importlib.import_module(f"{package}.{route}")
        except Exception as exc:  # collected for the assertion
            errors.append(exc)

    try:
        threads = [
            threading.Thread(target=first_request, args=(r,)) for r in ("alpha", "beta")
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m.split(".")[0] == package]:
            del sys.modules[name]
    assert len(errors) == 1
    (error,) = errors
    assert type(error).__name__ == "_DeadlockError"
    assert isinstance(error, RuntimeError)
    assert not isinstance(error, ImportError)
    assert "deadlock detected by _ModuleLock" in str(error)
    # Which of the two modules' locks the message names depends on scheduling.
    names = {f"{package}.{route}": "<module>" for route in ("alpha", "beta")}
    error_record(
        error,
        id="deadlock-error",
        component="CPython",
        version=platform.python_version(),
        section="problem",
        names=names,
    )


def test_a_half_built_module_has_no_attribute_yet(
    tmp_path: Path, error_record: ErrorRecorder
) -> None:
    """The message a request gets from a module that another import started:
    here in one thread, a cycle whose second module reads from the first."""
    package = f"half_{tmp_path.name}"
    (tmp_path / package).mkdir()
    (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / package / "alpha.py").write_text(
        f"from {package} import beta\nROUTE = 'alpha'\n"
    )
    (tmp_path / package / "beta.py").write_text(
        f"from {package} import alpha\nROUTE = alpha.ROUTE\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        with pytest.raises(AttributeError) as caught:
            importlib.import_module(f"{package}.alpha")
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m.split(".")[0] == package]:
            del sys.modules[name]
    assert "partially initialized module" in str(caught.value)
    # Python 3.13 adds the module's file ("from '/…/alpha.py'"): a record each.
    wording = "" if sys.version_info < (3, 13) else "-3-13"
    error_record(
        caught.value,
        id=f"partially-initialized{wording}",
        component="CPython",
        version=platform.python_version(),
        section="problem",
        names={package: "routes"},
    )


def test_prewarm_imports_in_sorted_order_and_raises_at_start_up() -> None:
    modules = prewarm(["json", "email.message"])
    assert list(modules) == ["email.message", "json"]
    with pytest.raises(ModuleNotFoundError):
        prewarm(["no_such_route_module"])


def test_executor_fast_path_skips_the_import_thread() -> None:
    with ImportExecutor(timeout=5) as executor:
        first = executor.import_module("json")
        executor._pool.shutdown(wait=True)  # a second import would now fail
        assert executor.import_module("json") is first
        with pytest.raises(RuntimeError):
            executor.import_module("csv")


def test_executor_times_out_a_caller_of_a_slow_import(tmp_path: Path) -> None:
    release = threading.Event()
    slow = f"slow_{tmp_path.name}"
    (tmp_path / f"{slow}.py").write_text(
        "import builtins\nbuiltins._import_hygiene_release.wait(10)\n"
    )
    sys.path.insert(0, str(tmp_path))

    builtins._import_hygiene_release = release  # type: ignore[attr-defined]
    try:
        with ImportExecutor(timeout=0.2) as executor:
            began = time.monotonic()
            with pytest.raises(TimeoutError):
                executor.import_module(slow)
            assert time.monotonic() - began < 5
            release.set()
    finally:
        del builtins._import_hygiene_release  # type: ignore[attr-defined]
        sys.path.remove(str(tmp_path))
        sys.modules.pop(slow, None)
