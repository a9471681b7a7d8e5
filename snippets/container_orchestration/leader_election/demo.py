"""The cases the leader-election page shows, on a local PostgreSQL.

    python -m snippets.container_orchestration.leader_election.demo CASE

``demo`` runs three electors as threads for six terms; ``unfenced`` and
``fenced`` freeze a leader past its lease in a real process and thaw it after
another replica took over. ``kubernetes-timing`` checks Lease timings against
the renewal loops of client-go and the Python client; it needs no server.
"""

from __future__ import annotations

import itertools
import sys
import threading
import time
from typing import Final

from snippets.container_orchestration.leader_election import (
    LeaderElector,
    Lease,
    Timing,
    connect,
    create_schema,
    fenced_write,
    leads_for,
    timing_problems,
)
from snippets.container_orchestration.leader_election.kubernetes_timing import Client
from snippets.support import services
from snippets.support.cases import run_cases
from snippets.support.container_orchestration_replicas import (
    LEASE,
    RESOURCE,
    split_brain,
)

DEMO_TIMING: Final = Timing(lease_duration=1.0, renew_deadline=0.6, retry_period=0.2)

# (client, lease duration, renew deadline, retry period, where the timing is from)
KUBERNETES_TIMINGS: Final[tuple[tuple[Client, int, int, int, str], ...]] = (
    ("client-go", 15, 10, 2, "kube-controller-manager's defaults"),
    ("python", 15, 10, 2, "the same timing"),
    ("client-go", 15, 10, 3, "a 3 s retry period"),
    ("python", 15, 10, 3, "the same timing"),
    ("python", 17, 15, 5, "kubernetes/leaderelection/example.py"),
    ("client-go", 15, 10, 10, "retry as long as the deadline"),
)


# --8<-- [start:demo]
def demo(dsn: str, *, replicas: int = 3, terms: int = 6) -> list[str]:
    """Run ``replicas`` electors as threads for ``terms`` terms; summarize them.

    Each leader makes one fenced write, keeps the lease through two renewals
    and hands it back.
    """
    stop, guard = threading.Event(), threading.Lock()
    spans: list[tuple[int, float, float]] = []  # (token, started, ended)
    with connect(dsn) as conn:
        create_schema(conn, lease="demo", resource="demo")

        def lead(lease: Lease, lost: threading.Event) -> None:
            start = time.monotonic()
            with guard:
                if len(spans) >= terms:
                    stop.set()
                    return
            with connect(dsn) as own:
                accepted = fenced_write(own, lease, "demo", f"term {lease.token}")
            # Lead through two renewals, then hand over.
            kept = not lost.wait(2.5 * DEMO_TIMING.retry_period)
            if accepted and kept:
                with guard:
                    spans.append((lease.token, start, time.monotonic()))

        electors = [
            LeaderElector(dsn, lease="demo", identity=f"r{n}", timing=DEMO_TIMING)
            for n in range(replicas)
        ]
        threads = [threading.Thread(target=e.run, args=(lead, stop)) for e in electors]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        stop.set()
        (entries,) = conn.execute("SELECT count(*) FROM ledger").fetchone() or (0,)
    spans.sort()
    overlaps = sum(a[2] > b[1] for a, b in itertools.pairwise(spans))
    return [
        f"{replicas} replicas, {len(spans)} terms",
        "tokens in order of leadership: " + ", ".join(str(s[0]) for s in spans),
        f"terms that overlapped the next one: {overlaps}",
        f"fenced writes accepted: {entries}",
    ]


# --8<-- [end:demo]


def show_demo() -> list[str]:
    with services.postgres() as pg:
        return demo(pg.dsn)


def show_split_brain(mode: str) -> list[str]:
    with services.postgres() as pg:
        with connect(pg.dsn) as conn:
            create_schema(conn, lease=LEASE, resource=RESOURCE)
        return split_brain(pg.dsn, mode).lines


def show_kubernetes_timing() -> list[str]:
    lines = []
    for client, lease, deadline, retry, source in KUBERNETES_TIMINGS:
        acting = leads_for(deadline, retry, client=client)
        name = "Python client" if client == "python" else client
        lines.append(f"{name}: {source}")
        lines.append(
            f"  lease {lease} s, renew deadline {deadline} s, retry {retry} s:"
            f" leads up to {acting:g} s"
        )
        problems = timing_problems(lease, deadline, retry, client=client)
        lines.extend(f"  - {problem}" for problem in problems or ["ok"])
    return lines


if __name__ == "__main__":
    sys.exit(
        run_cases(
            {
                "demo": show_demo,
                "fenced": lambda: show_split_brain("fenced"),
                "kubernetes-timing": show_kubernetes_timing,
                "unfenced": lambda: show_split_brain("unfenced"),
            }
        )
    )
