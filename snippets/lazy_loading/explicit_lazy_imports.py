"""Explicit lazy imports (PEP 810, Python 3.15), written to run on 3.11 too.

* Declare the imports that may wait with `__lazy_modules__`: Python 3.15
  defers them until first use, and 3.11 to 3.14 ignore the name and import as
  they always did. One file, correct on every version, faster on 3.15.
* A deferred import moves the module's side effects to first use, on
  whichever thread gets there first, or to never. `Registry.get` does not
  depend on a plugin module having been imported: on a miss it imports the
  module that provides the entry, once, however many threads ask.
* `Registry.prewarm` imports every provider at start-up, so a broken plugin
  stops the start instead of failing a request.
"""

from __future__ import annotations

# --8<-- [start:declare]
# Python 3.15 defers the imports of these modules until their first use.
# Python 3.11 to 3.14 ignore the name: the imports below run right away.
__lazy_modules__ = ["statistics"]

import importlib
import statistics
import sys
import threading
from collections.abc import Callable, Mapping
from typing import TypeVar

# --8<-- [end:declare]

__all__ = ["PlainRegistry", "Registry", "latency_summary"]

Entry = TypeVar("Entry", bound=Callable[..., object])


def latency_summary(milliseconds: list[float]) -> str:
    """Median and 95th percentile: the one function here that uses statistics."""
    median = statistics.median(milliseconds)
    p95 = statistics.quantiles(milliseconds, n=20, method="inclusive")[-1]
    return f"median {median:.1f} ms, p95 {p95:.1f} ms"


# --8<-- [start:plain]
class PlainRegistry:
    """The usual plugin registry, kept for the tests.

    Plugin modules call `register` when they are imported; `get` assumes that
    every plugin module has been imported by the time anybody asks.
    """

    def __init__(self) -> None:
        self._entries: dict[str, Callable[..., object]] = {}
        self._lock = threading.Lock()

    def register(self, key: str) -> Callable[[Entry], Entry]:
        """Decorator a plugin module applies to its entry at import time."""

        def add(entry: Entry) -> Entry:
            with self._lock:
                self._entries[key] = entry
            return entry

        return add

    def get(self, key: str) -> Callable[..., object]:
        """The entry for `key`; KeyError if its module was never imported."""
        return self._entries[key]

    def keys(self) -> list[str]:
        """The keys registered so far."""
        return sorted(self._entries)


# --8<-- [end:plain]


# --8<-- [start:registry]
class Registry(PlainRegistry):
    """A plugin registry that imports a plugin's module when it is needed.

    Args:
        providers: For each key, the module that registers it when imported,
            such as `{"csv": "exporters.csv_export"}`.
    """

    def __init__(self, providers: Mapping[str, str]) -> None:
        super().__init__()
        self.providers = dict(providers)

    def get(self, key: str) -> Callable[..., object]:
        """The entry for `key`, importing the module that provides it if needed.

        Raises:
            KeyError: no provider is known for `key`.
            LookupError: the provider was imported but did not register `key`.
            ImportError: importing the provider failed (raised on this thread).
        """
        try:
            return super().get(key)
        except KeyError:
            module = self.providers[key]  # KeyError: an unknown key
        # Runs the module once; threads that ask meanwhile wait on the import
        # lock for that module, then find the entry it registered.
        importlib.import_module(module)
        try:
            return super().get(key)
        except KeyError:
            raise LookupError(f"{module} did not register {key!r}") from None

    def prewarm(self) -> list[str]:
        """Import every provider now, in this thread; returns the keys."""
        for module in sorted(set(self.providers.values())):
            importlib.import_module(module)
        return self.keys()


# --8<-- [end:registry]


# --8<-- [start:demo]
def demo() -> list[str]:
    """What a fresh `import` of this module loads, and a registry lookup."""
    from snippets.lazy_loading.lazy_submodules import modules_imported_by

    this = __spec__.name if __spec__ else __name__  # also when run with -m
    imported = modules_imported_by(f"import {this}")
    loaded = [name for name in __lazy_modules__ if name in imported]
    python = "3.11-3.14" if sys.version_info < (3, 15) else "3.15+"
    exporters = importlib.import_module(f"{__package__}.exporters")
    registry: Registry = exporters.registry
    before = ", ".join(registry.keys()) or "nothing"
    export = registry.get("csv")
    return [
        f"__lazy_modules__:          {', '.join(__lazy_modules__)}",
        f"imported on {python}:     {', '.join(loaded) or 'nothing'}",
        f"registered before get():   {before}",
        f"get('csv') imported:       {export.__module__}",
        f"registered after get():    {', '.join(registry.keys())}",
    ]


# --8<-- [end:demo]


def show_registry() -> list[str]:
    """A deferred plugin, looked up in a plain registry and in `Registry`."""
    from snippets.support.lazy_loading_apps import plain, scratch_apps, with_providers

    lines = []
    with scratch_apps() as apps:
        for label, make in (("PlainRegistry", plain), ("Registry", with_providers)):
            _, probe = apps.make(make)
            try:
                entry = probe.registry.get("csv")
                outcome = f"{entry.__module__.rpartition('.')[2]}.{entry.__name__}"
            except KeyError as error:
                outcome = f"KeyError: {error}"
            call = f"{label}.get('csv')"
            lines.append(f"{call:<26}-> {outcome}")
            lines.append(f"{'  plugin module ran':<26}-> {probe.runs} time(s)")
    return lines


if __name__ == "__main__":
    from snippets.support.cases import run_cases

    sys.exit(run_cases({"demo": demo, "registry": show_registry}))
