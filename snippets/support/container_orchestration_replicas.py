"""Split brain on demand: a leader frozen past its lease while another takes over.

``split_brain`` runs two replicas of ``leader_election`` as real processes
(the ``replica`` child program), freezes leader A with SIGSTOP between its
lease check and its write, keeps it frozen while replica B takes the expired
lease and writes, then thaws A with SIGCONT, and narrates what happened.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from snippets.container_orchestration import leader_election as le
from snippets.support.processes import read_line as _read_line

__all__ = ["ENTRY", "LEASE", "RESOURCE", "SplitBrain", "ledger_tokens", "split_brain"]

ROOT = Path(__file__).resolve().parents[2]
CHILDREN = "snippets.support.container_orchestration_children"
LEASE, RESOURCE, ENTRY = "billing", "invoices", "invoice batch 42"


def spawn(dsn: str, identity: str, mode: str, pause: bool) -> subprocess.Popen[str]:
    args = [dsn, identity, mode, "pause" if pause else "-", RESOURCE, ENTRY, LEASE]
    return subprocess.Popen(
        [sys.executable, "-m", CHILDREN, "replica", *args],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def wait_stopped(pid: int, timeout: float = 5) -> None:
    """Wait until the kernel reports the process as stopped (state T)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state == "T":
            return
        time.sleep(0.01)
    raise TimeoutError(f"process {pid} did not stop")


def reap(*procs: subprocess.Popen[str]) -> None:
    for proc in procs:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
            proc.kill()
            proc.wait(timeout=10)
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()


def ledger_tokens(dsn: str) -> list[int]:
    """The tokens of the ledger entries for ``ENTRY``, in the order written."""
    with le.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT token FROM ledger WHERE resource = %s AND entry = %s ORDER BY id",
            (RESOURCE, ENTRY),
        ).fetchall()
    return [int(row[0]) for row in rows]


@dataclass(frozen=True)
class SplitBrain:
    """The narration, and how long A took to step down after SIGCONT."""

    lines: list[str]
    stepped_down: float
    tokens: list[int]


def split_brain(dsn: str, mode: str) -> SplitBrain:
    """Freeze leader A past its lease, let B take over, thaw A; narrate it."""
    a = spawn(dsn, "replica-a", mode, pause=True)
    b: subprocess.Popen[str] | None = None
    try:
        assert read_line(a) == "leader 1"
        assert read_line(a) == "checked"  # A checked its lease, about to write
        os.kill(a.pid, signal.SIGSTOP)
        wait_stopped(a.pid)
        lines = [
            f"{mode} writes",
            "replica-a: leader with token 1",
            "replica-a: checked its lease, then froze (SIGSTOP) before writing",
        ]
        b = spawn(dsn, "replica-b", mode, pause=False)
        token_b = int(read_line(b).removeprefix("leader "))
        lines.append(f"replica-b: lease expired, leader with token {token_b}")
        lines.append(f"replica-b: write with token {token_b} {read_line(b)}")
        assert a.stdin is not None
        a.stdin.write("go\n")
        a.stdin.flush()
        resumed = time.monotonic()
        os.kill(a.pid, signal.SIGCONT)
        lines.append(f"replica-a: thawed (SIGCONT), write with token 1 {read_line(a)}")
        assert read_line(a) == "stepped-down"
        stepped_down = time.monotonic() - resumed
        lines.append("replica-a: its renew deadline had passed, stepped down")
        assert a.wait(timeout=10) == 0
        b.send_signal(signal.SIGTERM)
        assert read_line(b) == "stepped-down"
        assert b.wait(timeout=10) == 0
    finally:
        reap(a, *([b] if b else []))
    tokens = ledger_tokens(dsn)
    listed = ", ".join(map(str, tokens))
    entries = f"{len(tokens)} entr{'y' if len(tokens) == 1 else 'ies'}"
    lines.append(f"ledger: {entries} for {ENTRY!r} (tokens {listed})")
    return SplitBrain(lines, stepped_down, tokens)


def read_line(proc: subprocess.Popen[str], timeout: float = 60) -> str:
    """One line from a child's stdout (replicas wait on a database: a longer limit)."""
    return _read_line(proc, timeout)
