"""Cache-Control for a bundler's output: hashed files forever, HTML never stale.

A file whose name carries a content hash (``assets/report-Cmu44hvl.js`` from
Vite, ``940.beef8f34.js`` from webpack) never changes: a new build writes a new
name. Browsers and CDNs may keep it for a year without asking again.
``index.html`` keeps its name across releases, so every visit must ask the
host whether it changed (``no-cache``: store it, but revalidate before use).
"""

from __future__ import annotations

import re

__all__ = ["IMMUTABLE", "REVALIDATE", "cache_control", "is_hashed"]

# --8<-- [start:policy]
IMMUTABLE = "public, max-age=31536000, immutable"  # a year; never revalidate
REVALIDATE = "no-cache"  # store, but ask the host (ETag) before each use

# Vite writes every chunk and asset under build.assetsDir ("assets") with a
# hash in its name; the webpack config names chunks [id].[contenthash:8].js.
VITE_ASSETS = "/assets/"
_WEBPACK = re.compile(r"\.[0-9a-f]{8}\.(js|css)$")


def is_hashed(path: str) -> bool:
    """Whether the file at this URL path has a content hash in its name."""
    return path.startswith(VITE_ASSETS) or _WEBPACK.search(path) is not None


def cache_control(path: str) -> str:
    """The Cache-Control header for a file of the build."""
    return IMMUTABLE if is_hashed(path) else REVALIDATE


# --8<-- [end:policy]
