"""importlib.util.LazyLoader: import a module now, run its body on first use.

`lazy_import(name)` returns a module object at once; the module's code runs
the first time somebody reads one of its attributes, on whichever thread that
happens. It is the recipe from the importlib documentation with four changes:

* on CPython releases without the gh-114763 lock (3.11.0 to 3.11.8 and
  3.12.0 to 3.12.2) it imports eagerly, unless told that one thread is enough;
* two threads asking at once get one module object, not two;
* a module that is already imported is returned, not replaced by a copy;
* a body that fails on first use leaves nothing half-executed behind, and
  every later read of the module says why it failed.

`warm()` runs the bodies now, for servers that want failures at start-up.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import tempfile
import threading
from collections.abc import Callable
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType
from typing import Any, Final, NoReturn

from snippets.support.cases import run_cases

__all__ = [
    "LAZY_LOADER_IS_THREAD_SAFE",
    "has_lazy_loader_lock",
    "lazy_import",
    "warm",
]


# --8<-- [start:gate]
def has_lazy_loader_lock(release: tuple[int, int, int]) -> bool:
    """Whether CPython `release` serializes a lazy module's first load.

    The lock came with the fix for gh-114763, in 3.11.9 and 3.12.3; every
    3.13 release has it. Before, a second thread could read a module whose
    body was still running and get `AttributeError`.
    """
    return (
        release >= (3, 13, 0)
        or (3, 12, 3) <= release < (3, 13, 0)
        or (3, 11, 9) <= release < (3, 12, 0)
    )


LAZY_LOADER_IS_THREAD_SAFE: Final = has_lazy_loader_lock(sys.version_info[:3])
# --8<-- [end:gate]


# --8<-- [start:recipe]
def docs_recipe(name: str) -> ModuleType:
    """The importlib documentation's "Implementing lazy imports", as published.

    Only the `None` check is added, which a type checker requires.
    """
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module


# --8<-- [end:recipe]


# --8<-- [start:lazy-import]
_creating = threading.RLock()


def lazy_import(name: str, *, eager_if_unsafe: bool = True) -> ModuleType:
    """Return module `name` now; its body runs on the first attribute read.

    Args:
        name: Absolute module name. Its parent packages are imported now.
        eager_if_unsafe: Import eagerly where CPython lacks the gh-114763
            lock (3.11.0-3.11.8, 3.12.0-3.12.2). Pass False only when a
            single thread touches the module until it has loaded.

    Raises:
        ModuleNotFoundError: there is no module called `name`.
    """
    if eager_if_unsafe and not LAZY_LOADER_IS_THREAD_SAFE:
        return importlib.import_module(name)  # waits for a concurrent import
    parent = name.rpartition(".")[0]
    if parent:  # runs the packages' code, so not while holding the lock
        importlib.import_module(parent)
    with _creating:  # two threads asking at once must get one module object
        if name in sys.modules:
            return sys.modules[name]  # imported, or lazy already: keep it
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        loader = importlib.util.LazyLoader(_ForgetOnFailure(spec.loader))
        spec.loader = loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        loader.exec_module(module)
        return module


# --8<-- [end:lazy-import]


# --8<-- [start:forget]
class _ForgetOnFailure(importlib.abc.Loader):
    """Wraps a module's loader: a failed lazy load acts like a failed import."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        module: ModuleType | None = self._loader.create_module(spec)
        return module

    def exec_module(self, module: ModuleType) -> None:
        try:
            self._loader.exec_module(module)
        except BaseException as error:
            failure = error  # `error` is unbound when this block ends
            # A plain attribute read here would start the lazy load again.
            namespace = object.__getattribute__(module, "__dict__")
            name = namespace["__name__"]
            if sys.modules.get(name) is module:
                del sys.modules[name]  # the next import starts from scratch

            def __getattr__(attribute: str) -> NoReturn:
                message = f"lazy import of {name!r} failed on first use"
                raise ImportError(message, name=name) from failure

            namespace["__getattr__"] = __getattr__  # later reads say why
            raise

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._loader, attribute)  # get_source, is_package, ...


# --8<-- [end:forget]


# --8<-- [start:warm]
def warm(*modules: ModuleType) -> None:
    """Run the bodies of lazily imported modules now, in this thread.

    Call it during start-up, before the process reports ready: import errors
    then stop the start instead of failing a request later.
    """
    for module in modules:
        vars(module)  # reading any attribute, `__dict__` too, runs the body


# --8<-- [end:warm]


# --8<-- [start:first-use]
def first_use(make: Callable[[str], ModuleType], name: str) -> list[str]:
    """Create module `name` lazily, then read from it: first from a worker
    thread, then from this one. Returns what each read saw."""
    module = make(name)
    seen = [f"created                 {type(module).__name__}"]

    def read(attribute: str, where: str) -> None:
        label = f"{where} .{attribute}"
        try:
            seen.append(f"{label:<24}{getattr(module, attribute)!r}")
        except Exception as error:
            seen.append(f"{label:<24}{type(error).__name__}: {error}")

    worker = threading.Thread(target=read, args=("render", "worker"))
    worker.start()
    worker.join(timeout=10)
    read("render", "main  ")
    read("TITLE", "main  ")
    seen.append(f"{'in sys.modules':<24}{name in sys.modules}")
    try:  # what another module's `import name` gets now
        again = importlib.import_module(name)
        outcome = "the same module" if again is module else "a new module"
    except Exception as error:
        outcome = f"{type(error).__name__}: {error}"
    seen.append(f"{'imported again':<24}{outcome}")
    return seen


# --8<-- [end:first-use]


# --8<-- [start:demo]
BROKEN = """\
TITLE = "Quarterly report"
import reportlab_is_not_installed

def render(): ...
"""


def demo(directory: Path) -> list[str]:
    """A module whose body fails, loaded by the docs recipe and by lazy_import."""
    (directory / "report_by_recipe.py").write_text(BROKEN)
    (directory / "report_by_lazy_import.py").write_text(BROKEN)
    sys.path.insert(0, str(directory))
    importlib.invalidate_caches()
    try:
        lines = ["docs recipe:"]
        lines += [f"  {line}" for line in first_use(docs_recipe, "report_by_recipe")]
        lines += ["lazy_import(eager_if_unsafe=False):"]

        def make(name: str) -> ModuleType:
            return lazy_import(name, eager_if_unsafe=False)  # one reader at once

        lines += [f"  {line}" for line in first_use(make, "report_by_lazy_import")]
        return lines
    finally:
        sys.path.remove(str(directory))
        for name in ("report_by_recipe", "report_by_lazy_import"):
            sys.modules.pop(name, None)


def show_demo() -> list[str]:
    """The demo in a scratch directory for the two broken modules."""
    with tempfile.TemporaryDirectory() as workdir:
        return demo(Path(workdir))


if __name__ == "__main__":
    sys.exit(run_cases({"demo": show_demo}))
# --8<-- [end:demo]
