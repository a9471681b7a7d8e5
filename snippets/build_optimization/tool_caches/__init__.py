"""Caches of type checkers and linters: mypy's ``.mypy_cache``, dmypy, ruff.

`run_mypy` runs mypy against a cache directory and reports which modules it
type-checked again (`rechecked`) and which cache entries it discarded, and
why (`abandoned`); `run_ruff` does the same for ``ruff check``;
`mypy_daemon` runs dmypy for a local loop and always stops it.
"""

from snippets.build_optimization.tool_caches.daemon import Daemon, mypy_daemon
from snippets.build_optimization.tool_caches.mypy_cache import (
    MypyRun,
    abandoned,
    rechecked,
    run_mypy,
)
from snippets.build_optimization.tool_caches.ruff_cache import RuffRun, run_ruff

__all__ = [
    "Daemon",
    "MypyRun",
    "RuffRun",
    "abandoned",
    "mypy_daemon",
    "rechecked",
    "run_mypy",
    "run_ruff",
]
