"""CI caches that hit: pip's download cache and a whole cached venv.

`pip_install` installs a lock into a venv with one ``PIP_CACHE_DIR`` and
reports what pip installed and what it took from its cache; `serve_index`
runs a package index on 127.0.0.1 that counts the GETs pip sends it;
`save_cache` and `restore_cache` archive a directory the way actions/cache
does; `venv_links` reads the absolute paths a restored venv depends on;
`installed_versions` lists what a venv holds, to compare with the lock.
"""

from snippets.build_optimization.ci_caches.index import (
    LocalIndex,
    Request,
    serve_index,
)
from snippets.build_optimization.ci_caches.install import (
    Install,
    installed_versions,
    new_venv,
    pip_check,
    pip_env,
    pip_install,
)
from snippets.build_optimization.ci_caches.restore import (
    VenvLinks,
    restore_cache,
    save_cache,
    venv_links,
)

__all__ = [
    "Install",
    "LocalIndex",
    "Request",
    "VenvLinks",
    "installed_versions",
    "new_venv",
    "pip_check",
    "pip_env",
    "pip_install",
    "restore_cache",
    "save_cache",
    "serve_index",
    "venv_links",
]
