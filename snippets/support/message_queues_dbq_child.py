"""Worker processes for the database-work-queue tests.

    python -m snippets.support.message_queues_dbq_child claim DSN naive|lease
    python -m snippets.support.message_queues_dbq_child sqlite-drain PATH

``claim`` claims one job, prints which (and its lease token), and holds it until
it is killed. ``sqlite-drain`` connects, prints ``ready``, waits for a line on
stdin, drains the queue and prints the ids it claimed as JSON.
"""

from __future__ import annotations

import json
import sys
from datetime import timedelta

from snippets.message_queues.database_work_queue import (
    claim,
    connect,
    sqlite_claim,
    sqlite_complete,
    sqlite_connect,
)
from snippets.message_queues.database_work_queue.demo import naive_claim

__all__ = ["claim_and_hang", "sqlite_drain"]


def claim_and_hang(dsn: str, how: str) -> None:
    conn = connect(dsn)
    if how == "naive":
        print(naive_claim(conn), flush=True)
    else:
        job = claim(conn, lease=timedelta(seconds=30))
        assert job is not None
        print(job.id, job.token, flush=True)
    sys.stdin.read()


def sqlite_drain(path: str) -> None:
    conn = sqlite_connect(path)
    print("ready", flush=True)
    sys.stdin.readline()
    claimed = []
    while (job := sqlite_claim(conn, lease=30.0)) is not None:
        assert sqlite_complete(conn, job)
        claimed.append(job.id)
    conn.close()
    print(json.dumps(claimed), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "claim":
        claim_and_hang(sys.argv[2], sys.argv[3])
    else:
        sqlite_drain(sys.argv[2])
