"""Publish a file atomically: temporary file, ``fsync``, ``os.replace``.

POSIX only: the atomic rename and the directory ``fsync`` are POSIX behaviour.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

__all__ = ["TMP_PREFIX", "fsync_dir", "write_temp"]

TMP_PREFIX = ".tmp-"


# --8<-- [start:publish]
def write_temp(directory: Path, chunks: Iterable[bytes]) -> tuple[Path, str]:
    """Stream ``chunks`` into a new temporary file in ``directory``.

    The file is on disk (``fsync``) when this returns. On any error, including
    cancellation, the temporary file is removed; a process that is killed
    leaves it behind for cache maintenance to delete.

    Returns:
        The temporary path and the SHA-256 of what was written.
    """
    fd, name = tempfile.mkstemp(dir=directory, prefix=TMP_PREFIX)
    tmp = Path(name)
    digest = hashlib.sha256()
    try:
        with open(fd, "wb") as out:
            for chunk in chunks:
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp, digest.hexdigest()


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` survive a power cut (POSIX)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --8<-- [end:publish]
