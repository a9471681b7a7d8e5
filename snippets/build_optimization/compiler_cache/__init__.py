"""A compiler cache (ccache) for setuptools and CMake builds.

`ccache_env` holds the settings a CI job needs (``CCACHE_DIR``,
``CCACHE_BASEDIR``); `setuptools_build` and `cmake_build` run clean builds
through ccache; `stats` reads its hit and miss counters.
"""

from snippets.build_optimization.compiler_cache.builds import (
    cmake_build,
    setuptools_build,
    setuptools_ccache_env,
)
from snippets.build_optimization.compiler_cache.ccache import (
    Stats,
    ccache_env,
    config_value,
    stats,
    zero_stats,
)

__all__ = [
    "Stats",
    "ccache_env",
    "cmake_build",
    "config_value",
    "setuptools_build",
    "setuptools_ccache_env",
    "stats",
    "zero_stats",
]
