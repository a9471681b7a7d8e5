"""Plugins discovered through entry points, each loaded on its own.

``load_plugins`` imports nothing until a plugin is loaded, and a plugin that
fails to import is reported instead of stopping the host.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["PluginReport", "load_plugins"]


# --8<-- [start:load-plugins]
@dataclass
class PluginReport:
    """What ``load_plugins`` loaded, and why the others failed."""

    loaded: dict[str, object] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


def load_plugins(group: str, names: Iterable[str] | None = None) -> PluginReport:
    """Load the entry points of ``group`` (only ``names``, if given).

    Each plugin loads inside its own ``try``: one that raises on import,
    or names an object that is missing, lands in ``failed`` with its error.
    """
    report = PluginReport()
    wanted = None if names is None else set(names)
    for ep in importlib.metadata.entry_points(group=group):
        if wanted is not None and ep.name not in wanted:
            continue
        try:
            report.loaded[ep.name] = ep.load()
        except Exception as error:  # a plugin's bug is not the host's
            report.failed[ep.name] = f"{type(error).__name__}: {error}"
    return report
    # --8<-- [end:load-plugins]
