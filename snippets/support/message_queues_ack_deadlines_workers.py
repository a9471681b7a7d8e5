"""Worker processes for the ack-deadlines scenarios, and the timings they share.

The child worker (``message_queues_ack_deadlines_child``) is started as its own
process, reads one message and is killed with SIGKILL before it acknowledges;
the Redis Streams and NATS JetStream scenarios run on these helpers and these
settings.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
from pathlib import Path

__all__ = [
    "ACK_WAIT",
    "CHILD",
    "DURABLE",
    "GROUP",
    "HEARTBEAT_EVERY",
    "JOB_SECONDS",
    "LONG_ACK_WAIT",
    "kill_hard",
    "spawn_worker",
    "wait_for_line",
]

ROOT = Path(__file__).resolve().parents[2]
CHILD = "snippets.support.message_queues_ack_deadlines_child"
GROUP = "workers"
DURABLE = "workers"
ACK_WAIT = 1.0  # seconds; short so the runs are quick
JOB_SECONDS = 2.2  # a "long" job: more than twice ACK_WAIT
HEARTBEAT_EVERY = 0.3  # well below ACK_WAIT
LONG_ACK_WAIT = 30.0  # for runs where only a nak may bring a message back


# --------------------------------------------------------------------------- #
# Worker processes that get killed
# --------------------------------------------------------------------------- #


def spawn_worker(*args: str) -> subprocess.Popen[str]:
    """Start the child worker module with `args`."""
    path = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    return subprocess.Popen(
        [sys.executable, "-m", CHILD, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_line(proc: subprocess.Popen[str], timeout: float = 10.0) -> str:
    """The worker's next stdout line; RuntimeError after `timeout` seconds."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        proc.kill()
        _, err = proc.communicate(timeout=5)
        raise RuntimeError(f"worker printed nothing in {timeout} s; stderr:\n{err}")
    return proc.stdout.readline().strip()


def kill_hard(proc: subprocess.Popen[str]) -> None:
    """SIGKILL: no finally blocks, no ack, no goodbye to the broker."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=10)
