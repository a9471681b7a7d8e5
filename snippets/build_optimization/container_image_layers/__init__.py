"""Container image builds that reuse their work: layer order and cache mounts.

An image builder caches each instruction's layer and reuses it while the
instruction and everything it copies are unchanged. Copying the lock file
and installing the dependencies before copying the source keeps the install
layer across source edits; a cache mount (`RUN --mount=type=cache`) keeps
pip's cache between builds without putting it into a layer.
"""

from .project import DOCKERFILES, edit_source, make_wheel, write_project

__all__ = ["DOCKERFILES", "edit_source", "make_wheel", "write_project"]
