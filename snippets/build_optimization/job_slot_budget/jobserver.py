"""A client of GNU make's jobserver: the pool of job slots make shares."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import select
import stat
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

from snippets.build_optimization.job_slot_budget.slots import (
    LocalSlots,
    SlotPool,
    Token,
)

__all__ = [
    "Jobserver",
    "JobserverUnavailable",
    "MakeFlags",
    "parse_makeflags",
    "slots_from_environment",
]

log = logging.getLogger(__name__)


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
