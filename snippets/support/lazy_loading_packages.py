"""Scratch packages for the lazy-submodules demo and tests.

``scratch_packages()`` puts a temporary directory on ``sys.path`` and yields a
``Packages`` that writes packages with unique names into it; each submodule
reports to a ``Probe`` module (how often its body ran, and a barrier where
racing threads meet). Everything is removed from ``sys.modules`` afterwards.
"""

from __future__ import annotations

import importlib
import sys
import tempfile
import threading
import types
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "BUGGY",
    "CYCLE",
    "PLAIN_INIT",
    "TOOLKIT_INIT",
    "Packages",
    "Probe",
    "deadlocks",
    "probe_three_ways",
    "run_together",
    "scratch_packages",
    "touch_a_and_b",
]

TOOLKIT_INIT = (
    Path(__file__).resolve().parent.parent / "lazy_loading" / "toolkit" / "__init__.py"
).read_text()
PLAIN_INIT = """\
from snippets.lazy_loading.lazy_submodules import plain_getattr
__getattr__ = plain_getattr(__name__, {names!r})
"""


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


@contextmanager
def scratch_packages(root: Path | None = None) -> Iterator[Packages]:
    """A `Packages` writing under `root` (or a new temporary directory)."""
    with tempfile.TemporaryDirectory() as tmp:
        base = str(root or tmp)
        sys.path.insert(0, base)
        made = Packages(Path(base))
        try:
            yield made
        finally:
            sys.path.remove(base)
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
        if thread.is_alive():
            raise RuntimeError("a thread is stuck: an import deadlock?")
    return results


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
