"""Dependency checks run on their own clock; probes read the cached result."""

from __future__ import annotations

import logging
import math
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .heartbeat import Heartbeat

__all__ = [
    "Answer",
    "CachedCheck",
    "Check",
    "CheckResult",
    "Health",
    "ping_check",
]

log = logging.getLogger(__name__)

Check = Callable[[float], None]
"""A dependency check: raises if the dependency does not answer within the timeout."""
Answer = tuple[int, str]
"""An HTTP status code and a short plain-text body."""


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one dependency check."""

    ok: bool
    detail: str
    checked_at: float  # time.monotonic() when the check started


# --8<-- [start:cached-check]
class CachedCheck:
    """One dependency, checked by one background thread; probes read the result.

    However many probes arrive, the dependency sees at most one check per
    `interval` (plus the time the check itself takes, at most `timeout`).
    A result older than `max_age` counts as failed: if the checking thread
    hangs, readiness goes red instead of reporting an old success forever.

    Args:
        name: Shown in the `/readyz` body when the check fails.
        check: Raises if the dependency does not answer within its argument,
            a timeout in seconds.
        interval: Seconds between the end of one check and the next.
        timeout: Passed to `check`.
        max_age: Oldest result still trusted; defaults to
            `3 * interval + timeout`.
    """

    def __init__(
        self,
        name: str,
        check: Check,
        *,
        interval: float,
        timeout: float,
        max_age: float | None = None,
    ) -> None:
        self.name = name
        self._check, self._interval, self._timeout = check, interval, timeout
        self._max_age = 3 * interval + timeout if max_age is None else max_age
        self._result = CheckResult(False, "not checked yet", -math.inf)
        self._first = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"check-{name}", daemon=True
        )

    # --8<-- [end:cached-check]

    # --8<-- [start:cached-check-loop]
    def result(self) -> CheckResult:
        """The last result, downgraded to a failure when stale. Never blocks."""
        result = self._result  # one read of a reference published whole
        age = time.monotonic() - result.checked_at
        if result.ok and age > self._max_age:
            return CheckResult(
                False, f"stale: checked {age:.1f}s ago", result.checked_at
            )
        return result

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self._check(self._timeout)
                result = CheckResult(True, "ok", started)
            except Exception as error:  # any failure means "not ready"
                result = CheckResult(False, f"{type(error).__name__}: {error}", started)
            self._result = result  # publish the finished result in one store
            self._first.set()
            self._stop.wait(self._interval)

    # --8<-- [end:cached-check-loop]

    def start(self) -> None:
        """Start checking; the first check runs at once."""
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop after the check in progress, if any."""
        self._stop.set()
        self._thread.join(timeout)

    def wait_first(self, timeout: float) -> bool:
        """Wait until the first check has finished; False on timeout."""
        return self._first.wait(timeout)


# --8<-- [start:health]
class Health:
    """The three answers, computed from in-process state only.

    Args:
        heartbeats: Every loop that must keep making progress.
        checks: The dependencies this replica cannot serve without.
    """

    def __init__(
        self, heartbeats: Sequence[Heartbeat], checks: Sequence[CachedCheck]
    ) -> None:
        self.heartbeats = list(heartbeats)
        self.checks = list(checks)
        self.started = threading.Event()  # set once warm-up has finished

    def livez(self) -> Answer:
        """200 while every heartbeat is fresh. Dependencies play no part."""
        stuck = [
            f"{beat.name}: no heartbeat for {beat.age():.1f}s (limit {beat.max_age:g}s)"
            for beat in self.heartbeats
            if not beat.fresh()
        ]
        return (503, "\n".join(stuck)) if stuck else (200, "ok")

    def readyz(self) -> Answer:
        """200 once started and while every cached check passed."""
        if not self.started.is_set():
            return 503, "starting"
        failing = [
            f"{check.name}: {result.detail}"
            for check in self.checks
            if not (result := check.result()).ok
        ]
        return (503, "\n".join(failing)) if failing else (200, "ok")

    def startupz(self) -> Answer:
        """200 once warm-up has finished."""
        return (200, "ok") if self.started.is_set() else (503, "starting")


# --8<-- [end:health]


# --8<-- [start:ping]
def ping_check(address: tuple[str, int]) -> Check:
    """A check that sends `PING` and expects `PONG` within the timeout.

    A stand-in for the cheapest request your dependency understands: `SELECT 1`
    with a statement timeout, a Redis `PING`, a broker's connection heartbeat.
    The whole exchange, connect included, must fit in one timeout.
    """

    def check(timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with socket.create_connection(address, timeout=timeout) as sock:
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            sock.sendall(b"PING\n")
            reply = sock.makefile("rb").readline()
        if reply != b"PONG\n":
            raise ConnectionError(f"unexpected reply {reply!r}")

    return check


# --8<-- [end:ping]
