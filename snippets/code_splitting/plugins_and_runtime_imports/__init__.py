"""Plugins and modules loaded at run time: from a file path, by entry point.

``load_from_path`` is the importlib recipe for a module that lives in a file
(register in ``sys.modules`` before the body runs); ``PathLoader`` runs each
file's body once however many threads ask at the same moment; ``can_import``
asks whether a module is importable without running it; ``load_plugins``
discovers plugins through entry points and loads each one on its own, so a
plugin that fails to import is reported instead of stopping the host.

Run ``python -m snippets.code_splitting.plugins_and_runtime_imports.demo CASE``
(``file``, ``threads``, ``find-spec`` or ``discover``).
"""

from .discovery import PluginReport, load_plugins
from .path_loading import PathLoader, can_import, load_from_path

__all__ = [
    "PathLoader",
    "PluginReport",
    "can_import",
    "load_from_path",
    "load_plugins",
]
