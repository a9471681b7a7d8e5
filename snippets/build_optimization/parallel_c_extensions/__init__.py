"""Parallel C-extension builds with setuptools, and where they stop.

`write_project` writes a package with several C extensions; `run_build_ext`
builds it with ``python setup.py build_ext``, serially or with ``-j``;
`extra_config_env` sets ``parallel`` through ``DIST_EXTRA_CONFIG``, the way
that works under every PEP 517 frontend. setuptools runs one thread per
extension: the files of one extension always compile one after another.
"""

from snippets.build_optimization.parallel_c_extensions.build import (
    build_ext_command,
    extra_config_env,
    run_build_ext,
)
from snippets.build_optimization.parallel_c_extensions.project import (
    SETUP_CFG,
    SETUP_PY,
    Project,
    write_project,
)

__all__ = [
    "SETUP_CFG",
    "SETUP_PY",
    "Project",
    "build_ext_command",
    "extra_config_env",
    "run_build_ext",
    "write_project",
]
