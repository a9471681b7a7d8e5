"""Leader-election timings on the Kubernetes Lease API, checked before you deploy.

Two clients campaign for a ``coordination.k8s.io/v1`` Lease: client-go's
``tools/leaderelection`` (Go controllers, kube-controller-manager) and the
official Python client's ``kubernetes.leaderelection``. Both refuse a lease
duration that is not longer than the renew deadline, and a renew deadline that
is not longer than 1.2 retry periods. Neither refuses a timing whose leader, cut
off from the API server, keeps leading after a follower may have taken over.

These functions follow each client's renewal loop as its source is written
(client-go ``leaderelection.go``; kubernetes 37.0.2 ``leaderelection.py``) and
name every rule a timing breaks. Nothing here talks to an API server.
"""

from __future__ import annotations

from typing import Final, Literal

__all__ = [
    "JITTER_FACTOR",
    "Client",
    "leads_for",
    "timing_problems",
]

JITTER_FACTOR: Final = 1.2  # client-go JitterFactor; Python Config.jitter_factor

Client = Literal["client-go", "python"]


# --8<-- [start:leads-for]
def leads_for(renew_deadline: float, retry_period: float, *, client: Client) -> float:
    """The longest a leader acts after its last successful renewal, in seconds.

    This counts the renewal loop only, with API calls that answer at once; a
    call that hangs adds its own duration.

    client-go waits one retry period after a renewal, then gives the next
    round ``renew_deadline`` and cancels the round's requests when it ends.
    The Python client also waits one retry period, then tries while less than
    ``renew_deadline`` has passed and sleeps a full retry period after every
    failed try, so it steps down only at the next whole retry period.
    """
    if client == "client-go":
        return retry_period + renew_deadline
    # kubernetes.leaderelection counts in whole milliseconds.
    period_ms = round(retry_period * 1000)
    deadline_ms = round(renew_deadline * 1000)
    tries = -(-deadline_ms // period_ms)  # tries at 0, 1, ... periods < deadline
    return (period_ms + tries * period_ms) / 1000


# --8<-- [end:leads-for]


# --8<-- [start:timing-problems]
def timing_problems(
    lease_duration: float,
    renew_deadline: float,
    retry_period: float,
    *,
    client: Client = "client-go",
) -> list[str]:
    """Every rule the timing breaks, in words; an empty list if it breaks none.

    The first two rules are the ones both clients enforce when you build the
    elector. The last is the one they do not: a follower may take the lease
    ``lease_duration`` after the last renewal it saw, so the leader must have
    stopped acting by then.
    """
    problems = []
    if lease_duration <= renew_deadline:
        problems.append("the lease duration must be longer than the renew deadline")
    if renew_deadline <= JITTER_FACTOR * retry_period:
        problems.append("the renew deadline must be longer than 1.2 retry periods")
    if client == "python" and min(lease_duration, renew_deadline, retry_period) < 1:
        problems.append("the Python client needs every duration to be 1 s or more")
    acting = leads_for(renew_deadline, retry_period, client=client)
    if acting >= lease_duration:
        problems.append(
            f"a follower may lead after {lease_duration:g} s,"
            f" the old leader acts up to {acting:g} s"
        )
    return problems


# --8<-- [end:timing-problems]
