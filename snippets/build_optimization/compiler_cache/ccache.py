"""ccache around the compiler: its environment, its counters, its settings.

Every setting has an environment form (``CCACHE_DIR``, ``CCACHE_BASEDIR``,
``CCACHE_COMPILERCHECK``...) that wins over ``ccache.conf``; a CI job sets
them in its environment and caches ``CCACHE_DIR`` between runs.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Stats", "ccache_env", "config_value", "stats", "zero_stats"]


# --8<-- [start:env]
def ccache_env(
    cache_dir: Path, base_dir: Path | None = None, hash_dir: bool = True
) -> dict[str, str]:
    """The variables a build (or a CI job) sets for ccache.

    ``CCACHE_DIR`` is the directory to keep between CI runs. ``base_dir``
    is the directory above every checkout: ccache rewrites absolute paths
    under it to relative ones before it hashes a command line, so two
    checkouts of one commit in different directories share hits.
    With ``-g`` ccache also hashes the working directory (``hash_dir``,
    true by default), which ``base_dir`` does not rewrite.
    """
    env = {"CCACHE_DIR": str(cache_dir)}
    if base_dir is not None:
        env["CCACHE_BASEDIR"] = str(base_dir)
    if not hash_dir:
        env["CCACHE_NOHASHDIR"] = "1"  # hash_dir = false in ccache.conf
    return env


# --8<-- [end:env]


@dataclass(frozen=True)
class Stats:
    """The counters that say whether the cache worked."""

    hits: int  # direct + preprocessed
    misses: int
    direct_hits: int
    links: int  # calls ccache passed through (a link is not cacheable)


def _ccache(
    args: list[str], env: Mapping[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ccache", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )


# --8<-- [start:stats]
def stats(env: Mapping[str, str]) -> Stats:
    """Hit and miss counters from ``ccache --print-stats`` (tab-separated)."""
    raw = _ccache(["--print-stats"], env).stdout
    counters = {}
    for line in raw.splitlines():
        name, _, value = line.partition("\t")
        counters[name] = int(value)
    return Stats(
        hits=counters["direct_cache_hit"] + counters["preprocessed_cache_hit"],
        misses=counters["cache_miss"],
        direct_hits=counters["direct_cache_hit"],
        links=counters["called_for_link"],
    )


# --8<-- [end:stats]


def zero_stats(env: Mapping[str, str]) -> None:
    """``ccache --zero-stats``: count the next build on its own."""
    _ccache(["--zero-stats"], env)


def config_value(key: str, env: Mapping[str, str]) -> str:
    """``ccache --get-config KEY``: the value in force, defaults included."""
    return _ccache(["--get-config", key], env).stdout.strip()
