"""Fast CLI start-up: import a subcommand's module only when it runs.

* `argparse_lazy.main` registers subcommands by name and help text, and
  imports a subcommand's module after parsing chose it.
* `LazyGroup` is click's documented lazy group; `LazyHelpGroup` also keeps
  ``--help`` from importing every subcommand to read its short help.
* `LazyTyperGroup` does the same for Typer, passed as ``typer.Typer(cls=...)``.
* `imported_by` runs a command line in a fresh interpreter and returns the
  modules it imported: the check for an import-time regression test.

This package imports nothing heavy itself: the names below load on first use,
so measuring a CLI does not measure this file.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from snippets.lazy_loading.cli_startup_time.click_cli import (
        LazyGroup,
        LazyHelpGroup,
    )
    from snippets.lazy_loading.cli_startup_time.probe import (
        heavy_imported,
        imported_by,
    )
    from snippets.lazy_loading.cli_startup_time.typer_lazy import LazyTyperGroup

__all__ = [
    "LazyGroup",
    "LazyHelpGroup",
    "LazyTyperGroup",
    "heavy_imported",
    "imported_by",
]

_WHERE = {
    "LazyGroup": "click_cli",
    "LazyHelpGroup": "click_cli",
    "LazyTyperGroup": "typer_lazy",
    "heavy_imported": "probe",
    "imported_by": "probe",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
