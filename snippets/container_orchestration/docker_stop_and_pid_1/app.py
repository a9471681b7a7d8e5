"""The process inside the container: a service that waits for work, as PID 1.

    python3 app.py plain      # no SIGTERM handler
    python3 app.py handler    # a handler that drains and exits 0
    python3 app.py prefork    # a handler, and two forked workers mid-request

It prints each event as one line (`docker logs` shows them): `ready`, the
signal it got, and for `prefork` how each worker ended. Standard library only:
it runs in the minimal image as it is.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

__all__ = ["handler", "main", "plain", "prefork", "worker"]


def say(line: str) -> None:
    print(f"{os.getpid()} {line}", flush=True)


# --8<-- [start:plain]
def plain() -> None:
    """No handler: SIGTERM's default action would end it, except as PID 1."""
    say("ready")
    threading.Event().wait()  # serve until stopped


# --8<-- [end:plain]


# --8<-- [start:handler]
def handler() -> None:
    """A handler that only wakes the main thread, which then drains and exits."""
    stop = threading.Event()

    def on_term(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_term)
    say("ready")
    stop.wait()
    say("got SIGTERM, drained, exit 0")
    sys.exit(0)


# --8<-- [end:handler]


# --8<-- [start:prefork]
def worker(number: int, drain: int) -> None:
    """A forked worker in the middle of a request (waiting on its I/O).

    It finishes the request and exits 0 when the parent drains it (closes
    `drain`); SIGTERM's default action would kill it mid-request instead.
    """
    say(f"worker {number} busy")
    os.read(drain, 1)  # the request's I/O; end of file: finish and exit
    os._exit(0)


def prefork() -> None:
    """The parent drains on SIGTERM: it lets each worker finish, then waits."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    drain, draining = os.pipe()
    children = []
    for number in (1, 2):
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.close(draining)
            worker(number, drain)
        children.append(pid)
    say("ready")
    stop.wait()
    say("got SIGTERM, draining the workers")
    os.close(draining)  # every worker finishes its request
    for number, pid in enumerate(children, 1):
        _, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status):
            ended = f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
        else:
            ended = f"finished its request, exit {os.WEXITSTATUS(status)}"
        say(f"worker {number} {ended}")
    sys.exit(0)


# --8<-- [end:prefork]


def main(mode: str) -> None:
    """Run the app as ``plain``, ``handler`` or ``prefork`` (the container's CMD)."""
    {"plain": plain, "handler": handler, "prefork": prefork}[mode]()


if __name__ == "__main__":
    main(sys.argv[1])
