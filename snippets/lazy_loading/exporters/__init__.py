"""Exporters: plugins that register themselves in `registry` when imported.

Importing this package imports none of them; `registry.get(key)` imports the
one it needs.
"""

from __future__ import annotations

from snippets.lazy_loading.explicit_lazy_imports import Registry

__all__ = ["registry"]

# --8<-- [start:providers]
registry = Registry(providers={"csv": f"{__name__}.csv_export"})
# --8<-- [end:providers]
