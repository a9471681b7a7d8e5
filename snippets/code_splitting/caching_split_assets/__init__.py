"""Caching a bundler's split assets: hashed names forever, HTML revalidated.

``cache_control`` is the header policy the page's host uses. The page's app
(``app/``) is built by Vite and webpack from ``snippets/web/`` and visited in
Chromium by the tests; the build configs it compares are in ``builds.py``.
"""

from snippets.code_splitting.caching_split_assets.headers import (
    IMMUTABLE,
    REVALIDATE,
    cache_control,
    is_hashed,
)

__all__ = ["IMMUTABLE", "REVALIDATE", "cache_control", "is_hashed"]
