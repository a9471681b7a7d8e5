"""The entries: content-addressed files, published atomically and touched on use."""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ENTRIES",
    "TMP_PREFIX",
    "TRASH_PREFIX",
    "Entry",
    "entries_dir",
    "publish",
    "read",
    "scan",
    "write_atomically",
]

ENTRIES = "entries"
TMP_PREFIX = ".tmp-"  # a publish in progress, or one whose writer died
TRASH_PREFIX = ".evict-"  # an entry a cleaner has moved aside


@dataclass(frozen=True)
class Entry:
    """One cache entry as a cleaner saw it."""

    path: Path
    size: int
    mtime: float


def entries_dir(root: Path) -> Path:
    """The directory that holds the entries; created on first use."""
    path = root / ENTRIES
    path.mkdir(parents=True, exist_ok=True)
    return path


def scan(root: Path) -> list[Entry]:
    """Every entry with its size and mtime; entries removed meanwhile are skipped."""
    found = []
    with os.scandir(entries_dir(root)) as listing:
        for item in listing:
            if item.name.startswith((TMP_PREFIX, TRASH_PREFIX)):
                continue
            try:
                st = item.stat()
            except FileNotFoundError:
                continue  # deleted between listing and stat
            found.append(Entry(Path(item.path), st.st_size, st.st_mtime))
    return found


# --8<-- [start:publish]
def publish(root: Path, data: bytes) -> str:
    """Store ``data`` under its digest and mark it as just used; return the name."""
    name = hashlib.sha256(data).hexdigest()
    path = entries_dir(root) / name
    try:
        os.utime(path)  # already there: now it is young, and eviction skips it
    except FileNotFoundError:
        write_atomically(path, data)  # new, or evicted a moment ago
    return name


def read(root: Path, name: str) -> bytes | None:
    """The entry's bytes, or None: missing and damaged entries are misses."""
    path = entries_dir(root) / name
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None  # evicted: rebuild it, never fail the build
    if hashlib.sha256(data).hexdigest() != name:
        path.unlink(missing_ok=True)  # damaged: let the next publish rewrite it
        return None
    try:
        os.utime(path)  # a hit makes the entry recently used
    except FileNotFoundError:
        pass  # evicted right after the read: the bytes are still good
    return data


# --8<-- [end:publish]


def write_atomically(path: Path, data: bytes) -> None:
    """Publish atomically: a temporary file in the same directory, then rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TMP_PREFIX)
    try:
        with open(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
