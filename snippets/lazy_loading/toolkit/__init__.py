"""A package whose expensive submodule is imported on first access.

`import toolkit` runs only this file; `toolkit.heavy` imports the submodule the
first time somebody reads it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from snippets.lazy_loading.lazy_submodules import LazySubmodules

__all__ = ["heavy", "prewarm"]

# --8<-- [start:package]
if TYPE_CHECKING:  # type checkers and editors see an ordinary import
    from . import heavy as heavy

_lazy = LazySubmodules(__name__, ["heavy"])
if not TYPE_CHECKING:  # hidden from checkers, so a typo stays a type error
    __getattr__ = _lazy.getattr
__dir__ = _lazy.dir
prewarm = _lazy.prewarm
# --8<-- [end:package]
