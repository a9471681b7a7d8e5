"""Gauges of jobs running at once, for the job-slot-budget demo and tests.

`PeakGauge` counts jobs in one process; `FileGauge` counts them across
processes in a JSON file under ``flock``. Run as a program, this module is
one job of a make build that records itself in a file gauge:

    python -m snippets.support.build_optimization_gauge GAUGE [--want N] [INDEX]

Each job holds until the peak reaches the most the configuration allows, so
peaks are exact rather than a matter of timing.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

__all__ = ["FileGauge", "PeakGauge"]


class PeakGauge:
    """Jobs running at once in this process, and the peak, under one lock."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self.running = 0
        self.peak = 0

    def job(self, want: int, linger: float = 0.0) -> Callable[[], None]:
        """An action that holds until `want` ran at once, then lingers."""

        def action() -> None:
            with self._changed:
                self.running += 1
                self.peak = max(self.peak, self.running)
                self._changed.notify_all()
                self._changed.wait_for(lambda: self.peak >= want, timeout=10)
                # One more job may start while we linger: if it can, we see it.
                self._changed.wait_for(lambda: self.peak > want, timeout=linger)
                self.running -= 1

        return action


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


def main(argv: Sequence[str]) -> int:
    """One job: enter the gauge, hold, leave."""
    parser = argparse.ArgumentParser(prog="build_optimization_gauge")
    parser.add_argument("gauge", type=Path)
    parser.add_argument("--want", type=int, default=1)
    parser.add_argument("--hold", type=float, default=5.0)
    parser.add_argument("--linger", type=float, default=0.0)
    parser.add_argument("index", nargs="?")
    args = parser.parse_args(argv)
    gauge = FileGauge(args.gauge)
    gauge.enter()
    try:
        gauge.hold(args.want, args.hold, args.linger)
    finally:
        gauge.leave()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
