"""Load a module from a file path, once per file, and ask whether one can be imported.

``load_from_path`` is the importlib recipe for a module that lives in a file
(register in ``sys.modules`` before the body runs); ``PathLoader`` runs each
file's body once however many threads ask at the same moment; ``can_import``
asks whether a module is importable without running it.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from pathlib import Path
from types import ModuleType

__all__ = ["PathLoader", "can_import", "load_from_path"]


# --8<-- [start:load-from-path]
def load_from_path(name: str, path: Path) -> ModuleType:
    """Import the file at ``path`` as the module ``name`` and return it.

    The module is in ``sys.modules`` while its body runs, as an import
    statement would leave it: dataclasses, pickle and ``typing.get_type_hints``
    look the module up there. If the body raises, the entry is removed again.
    """
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path} as a module", name=name)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module
    # --8<-- [end:load-from-path]


# --8<-- [start:path-loader]
class PathLoader:
    """Load plugin files by path, each body once, from any number of threads.

    One lock per file: callers of the same file wait for the one load in
    flight and get the same module object; other files load in parallel. A
    failed load is not kept, so the next call tries again.
    """

    def __init__(self, prefix: str = "plugin_") -> None:
        self._prefix = prefix
        self._guard = threading.Lock()
        self._locks: dict[Path, threading.Lock] = {}
        self._modules: dict[Path, ModuleType] = {}

    def load(self, path: Path) -> ModuleType:
        path = path.resolve()
        with self._guard:
            lock = self._locks.setdefault(path, threading.Lock())
        with lock:
            module = self._modules.get(path)
            if module is None:
                module = load_from_path(self._prefix + path.stem, path)
                self._modules[path] = module
            return module

    # --8<-- [end:path-loader]


# --8<-- [start:can-import]
def can_import(name: str) -> bool:
    """True if ``name`` can be found, without running the module's own body.

    ``find_spec("a.b")`` imports the parent package ``a`` (its
    ``__init__``) to read its ``__path__``; a missing parent raises
    ``ModuleNotFoundError``, which this function turns into False.
    """
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False
    # --8<-- [end:can-import]
