"""Lazy submodules: `import pkg` stays cheap, `pkg.heavy` loads on first access.

A package names its expensive submodules once. PEP 562's module `__getattr__`
imports each one the first time somebody reads it as an attribute, and module
`__dir__` keeps the names visible to `dir()` and tab completion. The import
system's per-module lock makes racing first accesses wait for one import.

* `LazySubmodules` provides the package's `__getattr__`, `__dir__` and a
  `prewarm()` for servers that want everything loaded before they take work.
* `modules_imported_by` runs a statement in a fresh interpreter and lists the
  modules it imported, so a test can prove that `import pkg` stays cheap.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
from collections.abc import Callable, Iterable
from types import ModuleType

from snippets.support.cases import run_cases
from snippets.support.lazy_loading_packages import (
    BUGGY,
    CYCLE,
    PLAIN_INIT,
    deadlocks,
    probe_three_ways,
    scratch_packages,
    touch_a_and_b,
)

__all__ = ["LazySubmodules", "modules_imported_by"]


# --8<-- [start:plain]
def plain_getattr(package: str, names: Iterable[str]) -> Callable[[str], ModuleType]:
    """The example from PEP 562, kept for the tests: no error translation."""
    lazy = frozenset(names)

    def __getattr__(name: str) -> ModuleType:
        if name in lazy:
            return importlib.import_module(f"{package}.{name}")
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__


# --8<-- [end:plain]


# --8<-- [start:helper]
class LazySubmodules:
    """A package's `__getattr__` and `__dir__` that import submodules on use.

    Args:
        package: The package's `__name__`.
        names: The submodules to import on first access, such as `["heavy"]`.
    """

    def __init__(self, package: str, names: Iterable[str]) -> None:
        self.package = package
        self.names = frozenset(names)

    def getattr(self, name: str) -> ModuleType:
        """Import `package.name` on its first access and return it.

        Raises:
            AttributeError: `name` is not one of the lazy submodules.
            ImportError: importing the submodule failed, also when its own
                code raised `AttributeError`.
        """
        if name not in self.names:
            raise AttributeError(f"module {self.package!r} has no attribute {name!r}")
        module = f"{self.package}.{name}"
        try:  # binds package.name; racing threads wait on the module's lock
            return importlib.import_module(module)
        except AttributeError as error:  # else hasattr() would answer False
            raise ImportError(
                f"importing {module} failed: {error}", name=module
            ) from error

    def dir(self) -> list[str]:
        """The package's attributes plus the lazy names, for `dir(package)`."""
        return sorted(set(vars(sys.modules[self.package])) | self.names)

    def prewarm(self) -> list[ModuleType]:
        """Import every lazy submodule now, in this thread.

        Call it at start-up in a server, before worker threads exist: import
        errors stop the start, and no two threads can first-touch submodules
        that import each other.
        """
        return [self.getattr(name) for name in sorted(self.names)]


# --8<-- [end:helper]


# --8<-- [start:measure]
def modules_imported_by(statement: str, timeout: float = 30) -> list[str]:
    """Modules a fresh interpreter imports to run `statement`, in import order.

    Compares `sys.modules` before and after. (`python -X importtime` misses
    modules imported through `importlib.import_module`, lazy submodules
    included: it times only the `import` statement's path.)

    Raises:
        subprocess.CalledProcessError: the statement failed.
        subprocess.TimeoutExpired: it did not finish within `timeout` seconds.
    """
    import subprocess  # only this function needs it: the helper stays cheap

    # A fresh interpreter that runs the statement and lists the new modules;
    # it finds modules where this process does.
    path = os.pathsep.join(entry or os.getcwd() for entry in sys.path)
    result = subprocess.run(
        [sys.executable, "-m", "snippets.support.import_probe", statement],
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )
    return result.stdout.split()


# --8<-- [end:measure]


# --8<-- [start:demo]
def demo() -> list[str]:
    """What `import toolkit` costs, and what the first `toolkit.heavy` adds."""
    package = f"{__package__}.toolkit"

    def ours(statement: str) -> str:
        found = modules_imported_by(statement)
        prefix = f"{__package__}."
        return ", ".join(m.removeprefix(prefix) for m in found if m.startswith(package))

    toolkit = importlib.import_module(package)
    try:
        toolkit.missing  # noqa: B018  (an attribute read that must fail)
        missing = "no error"
    except AttributeError as error:
        missing = f"AttributeError: {error}"
    return [
        f"import toolkit          loads {ours(f'import {package}')}",
        f"then toolkit.heavy      loads {ours(f'import {package}; {package}.heavy')}",
        f"dir(toolkit) has heavy: {'heavy' in dir(toolkit)}",
        f"toolkit.missing raises  {missing}",
    ]


# --8<-- [end:demo]


def show_bug() -> list[str]:
    """A typo inside a lazy submodule, seen through each `__getattr__`."""
    lines = []
    with scratch_packages() as packages:
        for label, init in (
            ("plain __getattr__ (the PEP 562 example):", PLAIN_INIT),
            ("LazySubmodules:", None),
        ):
            pkg, probe = packages.make(["heavy"], {"heavy": BUGGY}, init=init)
            lines.append(label)
            lines += [f"  {line}" for line in probe_three_ways(pkg, probe)]
    return lines


def show_cycle() -> list[str]:
    """Two threads first-touch the two ends of an import cycle."""
    lines = []
    with scratch_packages() as packages:
        for label, warm in (
            ("first touch from two threads", False),
            ("prewarm()", True),
        ):
            pkg, probe = packages.make(["a", "b"], CYCLE)
            if warm:
                pkg.prewarm()
            probe.meeting = threading.Barrier(2, timeout=5)
            found = deadlocks(touch_a_and_b(pkg))
            lines.append(f"{label}: _DeadlockError raised: {bool(found)}")
            if found:
                error = found[0]
                base = type(error).__mro__[1].__name__
                is_import_error = isinstance(error, ImportError)
                lines.append(f"  subclass of {base}, of ImportError: {is_import_error}")
                lines.append(f"  message: {str(error).split('(')[0]}(...)")
    return lines


if __name__ == "__main__":
    sys.exit(run_cases({"bug": show_bug, "cycle": show_cycle, "demo": demo}))
