"""Eviction under a cross-process lock, with a second look before each delete."""

from __future__ import annotations

import errno
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from snippets.build_optimization.cache_maintenance.store import (
    TMP_PREFIX,
    TRASH_PREFIX,
    entries_dir,
    scan,
)

__all__ = [
    "LOCK_FILE",
    "Eviction",
    "Policy",
    "evict",
    "maintenance_lock",
    "remove_leftovers",
]

LOCK_FILE = "maintenance.lock"


@dataclass(frozen=True)
class Policy:
    """When to evict, and how far.

    Args:
        limit_bytes: Evict when the entries take more than this.
        target_ratio: Evict down to ``limit_bytes * target_ratio``, so that
            the next few publishes do not trigger another eviction at once.
        grace_seconds: Never evict an entry published or read more recently
            than this. Make it longer than your longest build step.
    """

    limit_bytes: int
    target_ratio: float = 0.9
    grace_seconds: float = 600.0


@dataclass(frozen=True)
class Eviction:
    """What one call to an eviction function did.

    ``ran`` is False when another cleaner held the lock and nothing was done.
    """

    ran: bool
    deleted: int = 0
    freed_bytes: int = 0
    size_after: int = 0


# --8<-- [start:lock]
@contextmanager
def maintenance_lock(root: Path, timeout: float = 0.0) -> Iterator[bool]:
    """Hold the cache's maintenance lock; yield whether it was acquired.

    Gives up after ``timeout`` seconds (0: one try) and yields False, so a
    build never waits long for another build's cleanup. The kernel releases
    an ``flock`` lock when its holder exits, even on SIGKILL: there is no
    stale lock file to break.
    """
    # O_RDWR: over NFS, flock is emulated with a byte-range lock, and an
    # exclusive one needs a file opened for writing.
    fd = os.open(root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as error:
                if error.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    yield False
                    return
                time.sleep(0.05)
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


# --8<-- [end:lock]


# --8<-- [start:evict]
def evict(
    root: Path,
    policy: Policy,
    *,
    lock_timeout: float = 0.0,
    between: Callable[[], object] = lambda: None,
) -> Eviction:
    """Trim the cache to ``policy``, unless another cleaner is at it already.

    ``between`` runs inside the lock, after measuring and before deleting.
    """
    with maintenance_lock(root, lock_timeout) as acquired:
        if not acquired:
            return Eviction(ran=False)
        now = time.time()
        remove_leftovers(root, now - policy.grace_seconds)
        entries = scan(root)  # measured inside the lock: no other cleaner runs
        total = sum(entry.size for entry in entries)
        between()
        if total <= policy.limit_bytes:
            return Eviction(ran=True, size_after=total)
        target = int(policy.limit_bytes * policy.target_ratio)
        deleted = freed = 0
        for entry in sorted(entries, key=lambda e: e.mtime):
            if total <= target:
                break
            if entry.mtime > now - policy.grace_seconds:
                break  # this one and all after it are young
            gone = _delete_if_still_old(entry.path, now - policy.grace_seconds)
            if gone is None:
                continue  # touched since the scan: keep it
            # Gone either way. If another process removed it, it has left the
            # total too: counting only my own deletions would over-delete.
            total -= entry.size
            if gone:
                deleted, freed = deleted + 1, freed + entry.size
        return Eviction(True, deleted, freed, total)


# --8<-- [end:evict]


# --8<-- [start:recheck]
def _delete_if_still_old(path: Path, cutoff: float) -> bool | None:
    """Delete ``path`` unless it was touched after ``cutoff``.

    Returns True if deleted, False if it was already gone, None if kept.
    The entry is first renamed aside: a build that touches it from then on
    finds no file and publishes a fresh copy, so a touch cannot slip in
    between the age check and the delete.
    """
    trash = path.with_name(TRASH_PREFIX + path.name)
    try:
        os.replace(path, trash)
    except FileNotFoundError:
        return False
    if trash.stat().st_mtime > cutoff:  # touched before the rename: put it back
        os.replace(trash, path)  # same name, same bytes: harmless if republished
        return None
    trash.unlink()
    return True


def remove_leftovers(root: Path, cutoff: float) -> None:
    """Delete temporary files of dead writers and entries of dead cleaners."""
    with os.scandir(entries_dir(root)) as listing:
        for item in listing:
            if not item.name.startswith((TMP_PREFIX, TRASH_PREFIX)):
                continue
            try:
                if item.stat().st_mtime < cutoff:
                    os.unlink(item.path)
            except FileNotFoundError:
                pass  # finished or removed meanwhile


# --8<-- [end:recheck]
