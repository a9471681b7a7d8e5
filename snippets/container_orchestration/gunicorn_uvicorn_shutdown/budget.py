"""How long the server may drain, given the orchestrator's grace period."""

from __future__ import annotations

__all__ = ["KUBERNETES_GRACE_SECONDS", "drain_budget"]

KUBERNETES_GRACE_SECONDS = 30
"""``terminationGracePeriodSeconds`` when a Pod does not set it."""


# --8<-- [start:budget]
def drain_budget(
    grace_seconds: int = KUBERNETES_GRACE_SECONDS,
    pre_stop_seconds: int = 0,
    margin_seconds: int = 5,
) -> int:
    """The `graceful_timeout` (gunicorn) or `--timeout-graceful-shutdown`
    (uvicorn) that ends before the orchestrator's SIGKILL.

    The grace period starts before the preStop hook runs, so the hook's time
    comes out of it; the margin covers the server's own exit.
    """
    budget = grace_seconds - pre_stop_seconds - margin_seconds
    if budget < 1:
        raise ValueError(
            f"a {grace_seconds} s grace period leaves no time to drain after a "
            f"{pre_stop_seconds} s preStop hook and a {margin_seconds} s margin"
        )
    return budget


# --8<-- [end:budget]
