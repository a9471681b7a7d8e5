"""Writes that carry the leader's fencing token, and the write that does not.

A lease alone cannot stop a leader that was paused (GC, SIGSTOP, a frozen VM)
and resumes after another replica took over. So every write the leader makes
carries its token, and the protected table refuses any token lower than the
highest it has accepted, in the same statement that makes the write.
"""

from __future__ import annotations

from typing import Final

from .lease import Conn, Lease

__all__ = [
    "FENCED_WRITE",
    "fenced_write",
    "unfenced_write",
]


# --8<-- [start:unfenced]
def unfenced_write(conn: Conn, lease: Lease, resource: str, entry: str) -> bool:
    """Write as the leader without a fence. **Broken.**

    The leader checked its lease some time before this statement. If it was
    paused in between and another replica took over, this stale write still
    lands: the job runs twice, or an older state overwrites a newer one.
    """
    conn.execute(
        "INSERT INTO ledger (resource, token, holder, entry) VALUES (%s, %s, %s, %s)",
        (resource, lease.token, lease.holder, entry),
    )
    return True


# --8<-- [end:unfenced]


# --8<-- [start:fenced]
FENCED_WRITE: Final = """
WITH fence AS (
    UPDATE fences SET token = %(token)s
     WHERE resource = %(resource)s AND token <= %(token)s
    RETURNING resource
)
INSERT INTO ledger (resource, token, holder, entry)
SELECT resource, %(token)s, %(holder)s, %(entry)s FROM fence
RETURNING id
"""


def fenced_write(conn: Conn, lease: Lease, resource: str, entry: str) -> bool:
    """Write only if no newer token has written to ``resource``.

    The fence check and the write are one statement: the ``UPDATE`` locks the
    fence row, so a concurrent writer with a newer token waits for it and then
    re-checks, and a stale token finds ``token <= %(token)s`` false.

    Returns:
        False when the write was refused: this replica is no longer the leader
        and must stop acting as one.
    """
    params = {
        "token": lease.token,
        "resource": resource,
        "holder": lease.holder,
        "entry": entry,
    }
    return conn.execute(FENCED_WRITE, params).fetchone() is not None


# --8<-- [end:fenced]
