"""Serialized cache maintenance: one cleaner at a time, and never a fresh entry.

Several builds share one cache directory. Each build publishes entries and,
when the directory has grown past its limit, evicts the least recently used
ones. Two things go wrong when nothing coordinates them:

* Two builds measure the same over-full cache at the same moment and both
  evict, so together they delete far more than the limit asks for.
* A cleaner decides from a listing that is already stale and deletes an entry
  that a build has just published or used.

The fix has three parts:

* `maintenance_lock` serializes cleaners across processes with ``fcntl.flock``
  on a lock file. A build that finds the lock taken skips maintenance instead
  of waiting for it; reads and publishes never take the lock.
* `evict` measures the cache inside the lock and deletes oldest first. Right
  before deleting an entry it moves it aside and checks its age again, and it
  puts back anything younger than the grace period.
* `publish` and `read` touch an entry, so "just published" and "just used"
  both count as young.

Entries are content-addressed: an entry's name is the SHA-256 of its bytes.
POSIX only (``fcntl``).
"""

from __future__ import annotations

import errno
import fcntl
import functools
import hashlib
import multiprocessing
import os
import queue
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path

ENTRIES = "entries"
LOCK_FILE = "maintenance.lock"
TMP_PREFIX = ".tmp-"  # a publish in progress, or one whose writer died
TRASH_PREFIX = ".evict-"  # an entry a cleaner has moved aside


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
class Entry:
    """One cache entry as a cleaner saw it."""

    path: Path
    size: int
    mtime: float


@dataclass(frozen=True)
class Eviction:
    """What one call to an eviction function did.

    ``ran`` is False when another cleaner held the lock and nothing was done.
    """

    ran: bool
    deleted: int = 0
    freed_bytes: int = 0
    size_after: int = 0


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


# --8<-- [start:naive]
def publish_unchecked(root: Path, data: bytes) -> str:
    """The broken publish, kept for the tests: an existing entry is left as is."""
    name = hashlib.sha256(data).hexdigest()
    path = entries_dir(root) / name
    if not path.exists():  # if it exists, its old mtime still says "evict me"
        _write(path, data)
    return name


def evict_unlocked(
    root: Path, policy: Policy, *, between: Callable[[], object] = lambda: None
) -> Eviction:
    """The broken cleaner, kept for the tests: no lock, no second look.

    ``between`` runs after measuring and before deleting; tests hold several
    cleaners there so that all of them measure the same over-full cache.
    """
    entries = scan(root)
    total = sum(entry.size for entry in entries)
    between()
    if total <= policy.limit_bytes:
        return Eviction(ran=True, size_after=total)
    to_free = total - int(policy.limit_bytes * policy.target_ratio)
    deleted = freed = 0
    for entry in sorted(entries, key=lambda e: e.mtime):
        if freed >= to_free:
            break
        try:
            entry.path.unlink()
        except FileNotFoundError:
            continue  # another cleaner got it: not freed by me, so keep going
        deleted, freed = deleted + 1, freed + entry.size
    return Eviction(
        ran=True, deleted=deleted, freed_bytes=freed, size_after=total - freed
    )


# --8<-- [end:naive]


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


# --8<-- [start:publish]
def publish(root: Path, data: bytes) -> str:
    """Store ``data`` under its digest and mark it as just used; return the name."""
    name = hashlib.sha256(data).hexdigest()
    path = entries_dir(root) / name
    try:
        os.utime(path)  # already there: now it is young, and eviction skips it
    except FileNotFoundError:
        _write(path, data)  # new, or evicted a moment ago
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


def _write(path: Path, data: bytes) -> None:
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


POLICY = Policy(limit_bytes=95_000, target_ratio=0.9, grace_seconds=60)


def fill(root: Path, count: int = 100, size: int = 1000) -> list[bytes]:
    """``count`` entries of ``size`` bytes, an hour old; the first is the oldest."""
    contents = [n.to_bytes(4, "big") * (size // 4) for n in range(count)]
    old = time.time() - 3600
    for n, data in enumerate(contents):
        name = publish(root, data)
        os.utime(entries_dir(root) / name, (old + n, old + n))
    return contents


def cleaner(
    root: Path, pattern: bool, hold: Callable[[], object], out: Queue[Eviction]
) -> None:
    """One build's cleanup, in its own process; ``hold`` runs after measuring."""
    if pattern:
        out.put(evict(root, POLICY, between=hold))
    else:
        out.put(evict_unlocked(root, POLICY, between=hold))


def collect(
    out: Queue[Eviction], procs: Sequence[BaseProcess], count: int, timeout: float = 20
) -> list[Eviction]:
    """``count`` results from ``out``; fail fast if a cleaner process died."""
    results: list[Eviction] = []
    deadline = time.monotonic() + timeout
    while len(results) < count:
        try:
            results.append(out.get(timeout=0.1))
        except queue.Empty:
            crashed = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
            if crashed or time.monotonic() > deadline:
                raise RuntimeError(f"cleaners failed: exit codes {crashed}") from None
    return results


# --8<-- [start:race]
def cleaners_at_once(root: Path, pattern: bool, cleaners: int = 4) -> list[Eviction]:
    """Start ``cleaners`` processes on one over-full cache; return what each did."""
    fill(root)
    ctx = multiprocessing.get_context("spawn")
    out: Queue[Eviction] = ctx.Queue()
    go, barrier = ctx.Event(), ctx.Barrier(cleaners)
    # Without the lock, every cleaner measures before any of them deletes.
    # With it, the winner waits inside the lock until the others have given up.
    hold = functools.partial(go.wait if pattern else barrier.wait, 10)
    procs = [
        ctx.Process(target=cleaner, args=(root, pattern, hold, out))
        for _ in range(cleaners)
    ]
    for proc in procs:
        proc.start()
    try:
        results = collect(out, procs, cleaners - 1 if pattern else 0)
        go.set()
        return results + collect(out, procs, cleaners - len(results))
    finally:
        stop(procs)


# --8<-- [end:race]


def stop(procs: Sequence[BaseProcess]) -> None:
    """Join every process; kill one that is still running after 10 s."""
    for proc in procs:
        proc.join(timeout=10)
        if proc.is_alive():
            proc.kill()
            proc.join(timeout=10)


def signal_and_wait(measured: Event, go: Event) -> None:
    """Tell the parent the cleaner has measured; wait until it says go."""
    measured.set()
    go.wait(timeout=10)


def republish_during_eviction(root: Path, pattern: bool) -> str:
    """A build republishes the oldest entry while a cleaner is between steps."""
    oldest = fill(root)[0]
    ctx = multiprocessing.get_context("spawn")
    out: Queue[Eviction] = ctx.Queue()
    measured, go = ctx.Event(), ctx.Event()
    hold = functools.partial(signal_and_wait, measured, go)
    procs = [ctx.Process(target=cleaner, args=(root, pattern, hold, out))]
    procs[0].start()
    try:
        if not measured.wait(timeout=20):
            raise RuntimeError("the cleaner did not start")
        name = (publish if pattern else publish_unchecked)(root, oldest)
        go.set()
        collect(out, procs, 1)
    finally:
        stop(procs)
    kept = read(root, name) == oldest
    return "entry kept, read hits" if kept else "entry deleted, read misses"


def summary(root: Path, results: list[Eviction]) -> str:
    """One line: how many cleaners evicted, what they deleted, what is left."""
    ran = sum(r.ran for r in results)
    deleted = sum(r.deleted for r in results)
    left = sum(entry.size for entry in scan(root))
    skipped = f", {len(results) - ran} skipped" if ran < len(results) else ""
    return f"{ran} evicted{skipped}, {deleted} deleted, {left} bytes left"


def demo(root: Path) -> list[str]:
    """Both races, without and with the pattern."""
    lines = [f"limit {POLICY.limit_bytes} bytes, 100 entries of 1000 bytes"]
    for pattern in (False, True):
        where = root / f"cleaners-{pattern}"
        result = summary(where, cleaners_at_once(where, pattern))
        label = f"4 cleaners, {'pattern' if pattern else 'no lock'}:"
        lines.append(f"{label:<21} {result}")
    for pattern in (False, True):
        result = republish_during_eviction(root / f"republish-{pattern}", pattern)
        label = f"republish, {'pattern' if pattern else 'no lock'}:"
        lines.append(f"{label:<21} {result}")
    return lines


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as scratch:
        print(*demo(Path(scratch)), sep="\n")
