"""One parallelism budget for every level of a build: a shared job-slot pool.

A build driver that runs a pool of workers, each of which runs a tool with a
pool of its own, multiplies parallelism: N targets times M actions on an
N-core machine. The cure is one pool of job slots that every level draws from.

* `LocalSlots` is the in-process pool: a `threading.BoundedSemaphore` that you
  create once and pass down to every level.
* `Jobserver` joins GNU make's pool: the last `--jobserver-auth=` in
  `MAKEFLAGS`, either `fifo:PATH` (make 4.4 and later) or the pipe form `R,W`.
  Every command make starts already holds one implicit slot; each further job
  costs one token read from the jobserver and written back when it ends.
* `slots_from_environment` picks one of them, and runs one job at a time when
  make's jobserver is announced but cannot be reached.

Run as a module, it is a small build driver that make can call (see `main`).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import logging
import os
import re
import select
import stat
import subprocess
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)


# --8<-- [start:nested]
def build_all(
    targets: int, actions: int, pool_size: int, run_action: Callable[[], None]
) -> None:
    """Run `targets` targets, each with `actions` actions, on two levels of pools.

    The outer pool stands for make running targets, the inner one for the tool
    each target calls (Ninja, a compiler with threads, a test runner). Both are
    sized to the CPU count, as their defaults are.
    """

    def build_target() -> None:
        with ThreadPoolExecutor(max_workers=pool_size) as inner:
            for future in [inner.submit(run_action) for _ in range(actions)]:
                future.result()

    with ThreadPoolExecutor(max_workers=pool_size) as outer:
        for future in [outer.submit(build_target) for _ in range(targets)]:
            future.result()


# --8<-- [end:nested]


# --8<-- [start:pool]
@dataclass(eq=False)
class Token:
    """One job slot, held from `acquire` until `release`.

    Attributes:
        value: The byte read from a jobserver (write the same one back), or
            None for the implicit slot and for local slots.
    """

    value: bytes | None
    released: bool = field(default=False, repr=False)


class SlotPool(ABC):
    """A pool of job slots shared by every level of a build."""

    @abstractmethod
    def acquire(self, timeout: float | None = None) -> Token:
        """Wait for a free slot; raise `TimeoutError` after `timeout` seconds."""

    @abstractmethod
    def _give_back(self, token: Token) -> None: ...

    def release(self, token: Token) -> None:
        """Return a slot. Releasing one twice raises `ValueError`."""
        if token.released:
            raise ValueError("job slot released twice")
        token.released = True
        self._give_back(token)

    @contextlib.contextmanager
    def slot(self, timeout: float | None = None) -> Iterator[Token]:
        """Hold one slot for the `with` block, and return it however it ends."""
        token = self.acquire(timeout)
        try:
            yield token
        finally:
            self.release(token)


# --8<-- [end:pool]


# --8<-- [start:local]
class LocalSlots(SlotPool):
    """`size` slots inside one process: create once, pass down to every level."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"a pool needs at least one slot, not {size}")
        self.size = size
        self._free = threading.BoundedSemaphore(size)

    def acquire(self, timeout: float | None = None) -> Token:
        if not self._free.acquire(timeout=-1 if timeout is None else timeout):
            raise TimeoutError(f"no job slot free after {timeout} s")
        return Token(None)

    def _give_back(self, token: Token) -> None:
        self._free.release()  # BoundedSemaphore: one release too many raises

    def __str__(self) -> str:
        return f"{self.size} local slot{'s' if self.size > 1 else ''}"


def within_budget(
    slots: SlotPool, action: Callable[[], None], timeout: float | None = None
) -> Callable[[], None]:
    """Wrap a leaf action so that it runs only while it holds a slot."""

    def run() -> None:
        with slots.slot(timeout):
            action()

    return run


# --8<-- [end:local]


# --8<-- [start:makeflags]
class JobserverUnavailable(Exception):
    """`MAKEFLAGS` names a jobserver that this process cannot use."""


@dataclass(frozen=True)
class MakeFlags:
    """What a tool started by make learns from `MAKEFLAGS`.

    Attributes:
        jobs: N from `-jN`; 0 for `-j` without a number (no limit); None when
            make runs one job at a time.
        auth: The value of the last `--jobserver-auth=`, or None.
        dry_run: make was started with `-n`.
    """

    jobs: int | None
    auth: str | None
    dry_run: bool


def parse_makeflags(makeflags: str) -> MakeFlags:
    """Parse `MAKEFLAGS`. Only the last `--jobserver-auth=` counts."""
    words = makeflags.split()
    jobs: int | None = None
    auth: str | None = None
    for word in words:
        if word.startswith("-j") and word[2:].isdigit():
            jobs = int(word[2:])
        elif word == "-j":
            jobs = 0
        elif word.startswith(("--jobserver-auth=", "--jobserver-fds=")):
            auth = word.partition("=")[2]  # a later one replaces it
    # Single-letter flags are the first word, which has no dash: "ks -j4 ...".
    dry_run = bool(words) and not words[0].startswith("-") and "n" in words[0]
    return MakeFlags(jobs, auth, dry_run)


# --8<-- [end:makeflags]


# --8<-- [start:connect]
def _open_fifo(path: str) -> tuple[int, int]:
    read_fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    if not stat.S_ISFIFO(os.fstat(read_fd).st_mode):
        os.close(read_fd)
        raise JobserverUnavailable(f"{path} is not a named pipe")
    return read_fd, os.open(path, os.O_WRONLY)


def _open_pipe(read: int, write: int) -> tuple[int, int]:
    if read < 0 or write < 0:
        raise JobserverUnavailable("make disabled the jobserver for this command")
    for fd, want in ((read, os.O_RDONLY), (write, os.O_WRONLY)):
        try:
            mode, flags = os.fstat(fd).st_mode, fcntl.fcntl(fd, fcntl.F_GETFL)
        except OSError:
            mode = flags = -1  # closed: make did not see a recursive command
        access = flags & os.O_ACCMODE
        if mode < 0 or not stat.S_ISFIFO(mode) or access not in (want, os.O_RDWR):
            raise JobserverUnavailable(
                f"jobserver file descriptors {read},{write} are not open; "
                "mark the recipe line with '+' (or use $(MAKE))"
            )
    # A private open file description for reading, so that O_NONBLOCK here
    # does not change the mode make and the other clients use (Linux /proc).
    private = os.open(f"/proc/self/fd/{read}", os.O_RDONLY | os.O_NONBLOCK)
    return private, os.dup(write)


# --8<-- [end:connect]


# --8<-- [start:client]
class Jobserver(SlotPool):
    """A client of GNU make's jobserver, safe to share between threads.

    Args:
        auth: The value of `--jobserver-auth=`: `fifo:PATH` or `R,W`.

    Raises:
        JobserverUnavailable: The style is unknown, or the pipe is not open
            in this process. `OSError` if the named pipe cannot be opened.
    """

    def __init__(self, auth: str) -> None:
        self.auth = auth
        if auth.startswith("fifo:"):
            self._read, self._write = _open_fifo(auth.removeprefix("fifo:"))
        elif re.fullmatch(r"-?\d+,-?\d+", auth):
            self._read, self._write = _open_pipe(*map(int, auth.split(",")))
        else:
            raise JobserverUnavailable(f"unknown jobserver style {auth!r}")
        self._lock = threading.Lock()
        self._implicit_free = True  # make started us holding one slot
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)

    # --8<-- [end:client]

    # --8<-- [start:acquire]
    def acquire(self, timeout: float | None = None) -> Token:
        """The implicit slot if it is free, else a token read from make."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                if self._implicit_free:
                    self._implicit_free = False
                    return Token(None)
            with contextlib.suppress(BlockingIOError):  # another client won
                byte = os.read(self._read, 1)
                if not byte:
                    raise JobserverUnavailable("the jobserver closed")
                return Token(byte)
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError(f"no job slot from make after {timeout} s")
            self._wait(left)

    def _wait(self, timeout: float | None) -> None:
        """Sleep until a token may be there or our implicit slot came back."""
        poller = select.poll()
        poller.register(self._read, select.POLLIN)
        poller.register(self._wake_read, select.POLLIN)
        poller.poll(None if timeout is None else max(1, int(timeout * 1000)))
        with contextlib.suppress(BlockingIOError):
            os.read(self._wake_read, 64)

    # --8<-- [end:acquire]

    # --8<-- [start:release]
    def _give_back(self, token: Token) -> None:
        if token.value is None:  # the implicit slot stays with this process
            with self._lock:
                self._implicit_free = True
            with contextlib.suppress(BlockingIOError):  # full: all wake anyway
                os.write(self._wake_write, b"!")  # wake threads in _wait
        else:
            os.write(self._write, token.value)  # the same byte we read

    def close(self) -> None:
        """Close this client's descriptors (not make's)."""
        for fd in (self._read, self._write, self._wake_read, self._wake_write):
            os.close(fd)

    def __str__(self) -> str:
        return f"make jobserver {self.auth}"

    # --8<-- [end:release]


# --8<-- [start:discover]
def slots_from_environment(
    environ: Mapping[str, str] | None = None, default: int | None = None
) -> SlotPool:
    """The pool this process should draw from.

    Under make with a jobserver: that jobserver. Under make without one, or
    with one this process cannot reach: one slot, as make itself runs a
    sub-make whose jobserver is gone. Outside make: `default` local slots
    (the CPU count unless given).
    """
    environ = os.environ if environ is None else environ
    default = default or os.cpu_count() or 1
    if "MAKEFLAGS" not in environ:
        return LocalSlots(default)
    flags = parse_makeflags(environ["MAKEFLAGS"])
    if flags.auth is not None:
        try:
            return Jobserver(flags.auth)
        except (JobserverUnavailable, OSError) as error:
            log.warning("cannot use make's jobserver (%s); running -j1", error)
            return LocalSlots(1)
    return LocalSlots(default if flags.jobs == 0 else 1)


# --8<-- [end:discover]


# --8<-- [start:leak]
STEP_SLOT_TIMEOUT = 1.0  # seconds; a real build waits as long as a step takes


def run_step_leaky(
    slots: SlotPool, prepare: Callable[[], None], run: Callable[[], None]
) -> None:
    """The broken version: an exception in `prepare` keeps the slot forever."""
    token = slots.acquire(timeout=STEP_SLOT_TIMEOUT)
    prepare()  # raises -> the release below never runs
    run()
    slots.release(token)


def run_step(
    slots: SlotPool, prepare: Callable[[], None], run: Callable[[], None]
) -> None:
    """Hold a slot for one step; `slot()` returns it in `finally`."""
    with slots.slot(timeout=STEP_SLOT_TIMEOUT):
        prepare()
        run()


# --8<-- [end:leak]


# --8<-- [start:gauge]
class FileGauge:
    """Counts jobs running at once across processes: a JSON file under `flock`.

    Each job calls `enter`, then `hold`, then `leave`. `hold` keeps the job
    running until the peak reaches `want` (or `timeout` passes), so a test can
    make jobs overlap as much as the slot budget allows, without sleeping and
    hoping.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, int]]:
        with open(self.path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            state = {"running": 0, "peak": 0, "jobs": 0}
            if self.path.exists():
                state.update(json.loads(self.path.read_text()))
            yield state
            self.path.write_text(json.dumps(state))

    def enter(self) -> None:
        with self._locked() as state:
            state["running"] += 1
            state["jobs"] += 1
            state["peak"] = max(state["peak"], state["running"])

    def leave(self) -> None:
        with self._locked() as state:
            state["running"] -= 1

    def read(self) -> dict[str, int]:
        """The current counts: running, peak, jobs."""
        with self._locked() as state:
            return dict(state)

    def hold(self, want: int, timeout: float, linger: float = 0.0) -> None:
        """Wait until `want` jobs ran at once (or `timeout`), then `linger` s."""
        deadline = time.monotonic() + timeout
        while self.read()["peak"] < want and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(linger)  # room for one job too many to show up


# --8<-- [end:gauge]


# --8<-- [start:driver]
def run_jobs(
    slots: SlotPool, commands: Sequence[Sequence[str]], slot_timeout: float
) -> list[int]:
    """Run commands in parallel, each while holding one slot; return exit codes.

    Threads are cheap; the slots, not the thread count, bound the parallelism.
    Children do not inherit the pipe descriptors (`close_fds` is the default):
    a child runs inside the slot this driver holds for it.
    """

    def run_one(command: Sequence[str]) -> int:
        with slots.slot(timeout=slot_timeout):
            return subprocess.run(command, check=False).returncode

    with ThreadPoolExecutor(max_workers=max(1, len(commands))) as pool:
        return list(pool.map(run_one, commands))


# --8<-- [end:driver]


# --8<-- [start:main]
def main(argv: Sequence[str] | None = None) -> int:
    """`run` N copies of a command under the budget, or be one `job`."""
    parser = argparse.ArgumentParser(prog="job_slot_budget")
    sub = parser.add_subparsers(dest="mode", required=True)
    run = sub.add_parser("run", help="run COMMAND --count times, with index")
    run.add_argument("--count", type=int, required=True)
    run.add_argument("--own-pool", type=int, help="ignore make: N local slots")
    run.add_argument("--slot-timeout", type=float, default=600.0)
    run.add_argument("command", nargs="+")
    job = sub.add_parser("job", help="one job that records itself in a gauge")
    job.add_argument("gauge", type=Path)
    job.add_argument("--want", type=int, default=1)
    job.add_argument("--hold", type=float, default=5.0)
    job.add_argument("--linger", type=float, default=0.0)
    job.add_argument("index", nargs="?")
    args = parser.parse_args(argv)
    if args.mode == "job":
        gauge = FileGauge(args.gauge)
        gauge.enter()
        try:
            gauge.hold(args.want, args.hold, args.linger)
        finally:
            gauge.leave()
        return 0
    commands = [[*args.command, str(index)] for index in range(args.count)]
    if parse_makeflags(os.environ.get("MAKEFLAGS", "")).dry_run:
        print(*(" ".join(command) for command in commands), sep="\n")
        return 0  # make -n still runs '+' lines: honour it
    slots = LocalSlots(args.own_pool) if args.own_pool else slots_from_environment()
    print(f"driver: {slots}", flush=True)
    codes = run_jobs(slots, commands, args.slot_timeout)
    return max(codes, default=0)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="driver: %(message)s")
    sys.exit(main())
# --8<-- [end:main]
