"""Scratch app packages whose plugin registers itself when first imported.

``scratch_apps()`` puts a temporary directory on ``sys.path`` and yields an
``Apps`` that writes app packages with unique names: each defers its
``csv_export`` plugin with module ``__getattr__`` (PEP 562), and the plugin
registers itself in the registry its ``Probe`` hands out and counts its runs.
Shared by the explicit-lazy-imports demo and tests.
"""

from __future__ import annotations

import importlib
import sys
import tempfile
import threading
import types
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from snippets.lazy_loading.explicit_lazy_imports import PlainRegistry, Registry

__all__ = [
    "APP_INIT",
    "PLUGIN",
    "Apps",
    "Probe",
    "plain",
    "scratch_apps",
    "with_providers",
]

# A package that defers its plugin module: `import app` does not import
# app.csv_export; reading `app.csv_export` does. The plugin registers itself
# in the registry the probe hands out.
APP_INIT = """\
from snippets.lazy_loading.lazy_submodules import LazySubmodules
__getattr__ = LazySubmodules(__name__, ["csv_export"]).getattr
"""
PLUGIN = """\
import {probe} as probe
probe.ran()
probe.meet()
@probe.registry.register("csv")
def export(rows):
    return rows
"""


class Probe(types.ModuleType):
    """Hands the plugin its registry and counts how often its body runs."""

    def __init__(self, name: str, registry: PlainRegistry) -> None:
        super().__init__(name)
        self.registry = registry
        self.runs = 0
        self.meeting: threading.Barrier | None = None
        self._lock = threading.Lock()

    def ran(self) -> None:
        with self._lock:
            self.runs += 1

    def meet(self) -> None:
        if self.meeting is not None:
            try:
                self.meeting.wait()
            except threading.BrokenBarrierError:
                pass  # the timeout: the other threads wait on the import lock


class Apps:
    """Writes app packages with unique names into a directory on sys.path."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.made: list[str] = []

    def make(
        self, make_registry: Callable[[str], PlainRegistry], plugin: str = PLUGIN
    ) -> tuple[types.ModuleType, Probe]:
        name = f"lzapp_{uuid.uuid4().hex[:10]}"
        probe = Probe(f"{name}_probe", make_registry(f"{name}.csv_export"))
        sys.modules[probe.__name__] = probe
        self.made += [name, probe.__name__]
        package = self.root / name
        package.mkdir()
        (package / "__init__.py").write_text(APP_INIT)
        (package / "csv_export.py").write_text(plugin.format(probe=probe.__name__))
        importlib.invalidate_caches()
        return importlib.import_module(name), probe


@contextmanager
def scratch_apps(root: Path | None = None) -> Iterator[Apps]:
    """An `Apps` writing under `root` (or a new temporary directory)."""
    with tempfile.TemporaryDirectory() as tmp:
        base = str(root or tmp)
        sys.path.insert(0, base)
        made = Apps(Path(base))
        try:
            yield made
        finally:
            sys.path.remove(base)
            for name in list(sys.modules):
                if name.partition(".")[0] in made.made:
                    del sys.modules[name]


def plain(_: str) -> PlainRegistry:
    return PlainRegistry()


def with_providers(module: str) -> Registry:
    return Registry(providers={"csv": module})
