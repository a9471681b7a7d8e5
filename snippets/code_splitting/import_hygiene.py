"""Import routes and plugins on demand without import-lock deadlocks.

A service that imports a route module on the first request, on whichever
worker thread receives it, can deadlock when two route modules import each
other: each thread holds one module's import lock and waits for the other's.
CPython detects the cycle and raises the private ``_DeadlockError``, a
``RuntimeError``, in one of the threads.

Two fixes, both in this module:

* `prewarm` imports every route module in one thread before workers start.
* `ImportExecutor` runs every *first* import on one dedicated thread, so two
  first imports never run at the same time; later lookups take no lock.

`write_cycle_package` and `demo` reproduce the hazard in child processes
(``snippets.support.code_splitting_children``).
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType, TracebackType

from snippets.support.cases import run_cases

__all__ = ["ImportExecutor", "prewarm"]

Handler = Callable[[], str]
ROOT = Path(__file__).resolve().parent.parent.parent


# --8<-- [start:naive]
def handler_on_first_request(module: str) -> Handler:
    """Import a route module on the request's own thread (the hazard).

    Two threads that first-import the two ends of an import cycle at the
    same moment each hold one module lock and wait for the other.
    """
    route = importlib.import_module(module)
    handler: Handler = route.handle
    return handler


# --8<-- [end:naive]


# --8<-- [start:prewarm]
def prewarm(modules: Iterable[str]) -> dict[str, ModuleType]:
    """Import every route module now, in the calling thread.

    Call it in the main thread before you start the worker threads. An
    import error surfaces here, at start-up, instead of in a request.

    Args:
        modules: Dotted module names, such as ``"routes.orders"``.

    Returns:
        The imported modules by name.
    """
    return {name: importlib.import_module(name) for name in sorted(modules)}


# --8<-- [end:prewarm]


# --8<-- [start:executor]
class ImportExecutor:
    """Run every first import on one dedicated thread.

    Later calls for a module it has imported read a dict and take no lock.
    Use it as a context manager, or call `close` on shutdown.

    Args:
        timeout: Seconds a caller waits for a first import before it gets
            `TimeoutError`. The import itself keeps running.
    """

    def __init__(self, timeout: float = 30.0) -> None:
        self._timeout = timeout
        self._loaded: dict[str, ModuleType] = {}
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="importer")
        self._thread: threading.Thread | None = None

    def import_module(self, name: str) -> ModuleType:
        """Return module ``name``, importing it on the import thread once."""
        module = self._loaded.get(name)
        if module is not None:  # fast path: imported and fully initialised
            return module
        if threading.current_thread() is self._thread:
            return self._import(name)  # a module body asks: no self-deadlock
        return self._pool.submit(self._import, name).result(self._timeout)

    def _import(self, name: str) -> ModuleType:
        self._thread = threading.current_thread()
        module = importlib.import_module(name)
        self._loaded[name] = module
        return module

    # --8<-- [end:executor]

    def close(self) -> None:
        """Finish the running import, drop queued ones, stop the thread."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> ImportExecutor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# --8<-- [start:cycle]
GATE = '''import threading
_both_inside = threading.Barrier(2, timeout={timeout})
def meet():
    """Wait until another import body runs too (at most {timeout} s)."""
    try:
        _both_inside.wait()
    except threading.BrokenBarrierError:
        pass
'''
ROUTE = """import importlib
from . import _gate
_gate.meet()  # the other thread is now inside the other module's body
{import_other}
NAME = "{name}"
def handle():
    return NAME + "->" + {other}.NAME
"""
IMPORTS = {
    "statement": "from . import {other}",
    "import_module": "{other} = importlib.import_module(__package__ + '.{other}')",
}


def write_cycle_package(
    root: Path, package: str, style: str, timeout: float = 0.1
) -> None:
    """Write a package whose route modules ``alpha`` and ``beta`` import
    each other, with an import statement or `importlib.import_module`
    (``style``); each body first waits for the other body to start."""
    pkg = root / package
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "_gate.py").write_text(GATE.format(timeout=timeout))
    for name, other in (("alpha", "beta"), ("beta", "alpha")):
        line = IMPORTS[style].format(other=other)
        text = ROUTE.format(name=name, other=other, import_other=line)
        (pkg / f"{name}.py").write_text(text)


# --8<-- [end:cycle]


# --8<-- [start:attempt]
def first_requests(root: Path, package: str, mode: str) -> list[str]:
    """Serve one first request for ``alpha`` and one for ``beta`` at once.

    ``mode`` is ``naive``, ``prewarm`` or ``executor``. Returns one outcome
    per thread, sorted: ``ok``, ``hung`` or the exception's class name.
    """
    sys.path.insert(0, str(root))
    routes = [f"{package}.alpha", f"{package}.beta"]
    executor = ImportExecutor(timeout=10) if mode == "executor" else None
    if mode == "prewarm":
        prewarm(routes)
    start = threading.Barrier(len(routes), timeout=10)
    outcomes = ["hung"] * len(routes)

    def request(index: int) -> None:
        start.wait()
        try:
            if executor is not None:
                route = executor.import_module(routes[index])
                route.handle()
            else:
                handler_on_first_request(routes[index])()
            outcomes[index] = "ok"
        except Exception as exc:  # the outcome is the result
            outcomes[index] = type(exc).__name__

    threads = [threading.Thread(target=request, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    if executor is not None:
        executor.close()
    return sorted(outcomes)


# --8<-- [end:attempt]


# --8<-- [start:demo]
def run_attempt(root: Path, package: str, mode: str, style: str) -> list[str]:
    """Run `first_requests` in a fresh interpreter, with a 30 s deadline."""
    write_cycle_package(root, package, style)
    child = [sys.executable, "-m", "snippets.support.code_splitting_children"]
    result = subprocess.run(
        [*child, "import-hygiene", str(root), package, mode],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return result.stdout.split()


def tally(root: Path, mode: str, style: str, runs: int = 10) -> Counter[str]:
    """Count the outcomes of ``runs`` fresh attempts of one mode and style."""
    counts: Counter[str] = Counter()
    for run in range(runs):
        package = f"routes_{mode}_{style}_{run}"
        counts.update(run_attempt(root, package, mode, style))
    return counts


def demo(root: Path, runs: int = 10) -> list[str]:
    """Which errors first requests met, per mode and import style.

    How many runs fail depends on scheduling (the bodies meet for at most
    0.1 s), so the lines name the errors, not how often they happened.
    """
    lines = []
    for mode in ("naive", "prewarm", "executor"):
        for style in IMPORTS:
            errors = sorted(set(tally(root, mode, style, runs)) - {"ok"})
            found = ", ".join(errors) or "none"
            lines.append(
                f"{mode:<8} {style:<13} {runs} runs x 2 threads, errors: {found}"
            )
    return lines


# --8<-- [end:demo]


def show_demo() -> list[str]:
    """Ten fresh attempts per mode and import style, in a scratch directory."""
    with tempfile.TemporaryDirectory() as tmp:
        return demo(Path(tmp))


if __name__ == "__main__":
    sys.exit(run_cases({"demo": show_demo}))
