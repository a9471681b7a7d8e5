"""The job service: accepts jobs once per key, runs them under a lease, and
owes each client a callback through an outbox."""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import sqlite3
import threading
import time
import uuid
from collections import Counter
from contextlib import closing
from pathlib import Path
from typing import Any

from snippets.webhook_design.async_request_reply.callbacks import CallbackRelay
from snippets.webhook_design.async_request_reply.jobs import (
    SERVER_SCHEMA,
    Accepted,
    JobStatus,
    RequestError,
    Work,
    parse_job_request,
)
from snippets.webhook_design.async_request_reply.transport import json_body

__all__ = ["JobService"]

log = logging.getLogger(__name__)


class JobService:
    """Accepts jobs, runs them on worker threads and reports on them.

    Args:
        path: The SQLite file; created with its table if missing.
        work: What a job does.
        secret: Signs callbacks (``whsec_...``).
        workers: Worker threads.
        require_key: Reject a POST without ``Idempotency-Key`` with 400.
        callback_attempts: Deliveries tried per callback before giving up;
            the client still learns the outcome by polling.
        callback_timeout: Seconds per callback attempt.
        callback_retry: Seconds before the second attempt; doubles after.
        lease: Seconds a process's claim on a running job lasts. It renews the
            claim every third of that while the work runs; another process
            takes the job over only once the claim has run out.
    """

    def __init__(
        self,
        path: str | Path,
        work: Work,
        *,
        secret: str,
        workers: int = 2,
        require_key: bool = True,
        callback_attempts: int = 3,
        callback_timeout: float = 5.0,
        callback_retry: float = 0.05,
        lease: float = 30.0,
    ) -> None:
        self.path = str(path)
        self._work = work
        self._require_key = require_key
        self._lease = lease
        self.owner = uuid.uuid4().hex  # this process, in the jobs it claims
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._stop = threading.Event()
        self._busy = threading.Condition()
        self._pending = 0  # jobs queued or running in this process
        self._relay = CallbackRelay(
            self.connect,
            secret,
            attempts=callback_attempts,
            timeout=callback_timeout,
            retry=callback_retry,
            changed=self._busy,
        )
        with closing(self.connect()) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(SERVER_SCHEMA)
        self._threads = [
            threading.Thread(target=self._worker, name=f"job-worker-{n}", daemon=True)
            for n in range(workers)
        ]
        self._threads.append(
            threading.Thread(
                target=self._relay.run,
                args=(self._stop,),
                name="callback-relay",
                daemon=True,
            )
        )
        self._threads.append(
            threading.Thread(target=self._heartbeat, name="job-lease", daemon=True)
        )
        for thread in self._threads:
            thread.start()
        self._resume()

    @property
    def callbacks(self) -> Counter[str]:
        """Callbacks this process ``delivered`` or gave up on (``failed``)."""
        return self._relay.counts

    def connect(self) -> sqlite3.Connection:
        """A new connection in autocommit mode; transactions are explicit."""
        return sqlite3.connect(self.path, timeout=5.0, isolation_level=None)

    # --8<-- [start:accept]
    def accept(self, body: bytes, key: str | None) -> Accepted:
        """Create a job, or map a repeated POST to the job its key created.

        Raises:
            RequestError: 400 for a bad body or a missing key, 422 when the key
                was used before with a different body.
        """
        job_input, callback_url = parse_job_request(body)
        if key is None and self._require_key:
            raise RequestError(400, "Idempotency-Key is required")
        fingerprint = hashlib.sha256(body).hexdigest()
        job_id = uuid.uuid4().hex
        with closing(self.connect()) as conn:
            conn.execute("BEGIN IMMEDIATE")  # one writer: lookup and insert are atomic
            try:
                seen = conn.execute(
                    "SELECT id, fingerprint FROM jobs WHERE idempotency_key = ?", (key,)
                ).fetchone()
                if seen is None:
                    conn.execute(
                        "INSERT INTO jobs (id, idempotency_key, fingerprint, input,"
                        " callback_url, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                        (
                            job_id,
                            key,
                            fingerprint,
                            json.dumps(job_input),
                            callback_url,
                            time.time(),
                        ),
                    )
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        if seen is not None:
            if seen[1] != fingerprint:
                raise RequestError(422, "Idempotency-Key was used with another body")
            return Accepted(seen[0], replayed=True)
        self._enqueue(job_id)  # only now: the key and the job are committed
        return Accepted(job_id, replayed=False)

    # --8<-- [end:accept]

    def status(self, job_id: str) -> JobStatus | None:
        """The job's state and result (a JSON value), or None if there is no job."""
        with closing(self.connect()) as conn:
            row = conn.execute(
                "SELECT state, result FROM jobs WHERE id = ?", (job_id,)
            ).fetchone()
        if row is None:
            return None
        return JobStatus(job_id, row[0], None if row[1] is None else json.loads(row[1]))

    # --8<-- [start:cancel]
    def cancel(self, job_id: str) -> str | None:
        """Cancel a job that has not finished; return its state afterwards.

        Cancelling is a guarded transition: it wins only while the job is
        ``accepted`` or ``running``. A running job's result is then discarded,
        because the worker's own transition to ``succeeded`` no longer matches.
        Returns None if there is no such job.
        """
        with closing(self.connect()) as conn:
            conn.execute(
                "UPDATE jobs SET state = 'cancelled'"
                " WHERE id = ? AND state IN ('accepted', 'running')",
                (job_id,),
            )
            row = conn.execute("SELECT state FROM jobs WHERE id = ?", (job_id,))
            found = row.fetchone()
        return None if found is None else str(found[0])

    # --8<-- [end:cancel]

    # --8<-- [start:worker]
    def _run(self, job_id: str) -> None:
        now = time.time()
        with closing(self.connect()) as conn:  # new, or its owner's lease ran out
            claimed = conn.execute(
                "UPDATE jobs SET state = 'running', owner = ?, lease_until = ?"
                " WHERE id = ? AND (state = 'accepted'"
                "  OR (state = 'running' AND lease_until < ?))"
                " RETURNING input, idempotency_key, callback_url",
                (self.owner, now + self._lease, job_id, now),
            ).fetchone()
        if claimed is None:
            return  # cancelled, finished, or running in a live process
        job_input, key, callback_url = claimed
        try:
            state, result = "succeeded", self._work(json.loads(job_input))
        except Exception as error:
            log.exception("job %s failed", job_id)
            state, result = "failed", {"error": type(error).__name__}
        self._finish(job_id, key, callback_url, state, result)

    # --8<-- [end:worker]

    # --8<-- [start:finish]
    def _finish(
        self, job_id: str, key: str | None, url: str | None, state: str, result: Any
    ) -> None:
        """Record the outcome and the callback it owes in one transaction."""
        body = json_body(
            {
                "type": f"job.{state}",
                "job_id": job_id,
                "idempotency_key": key,
                "state": state,
            }
        )
        with closing(self.connect()) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:  # 0 rows: cancelled, or our lease ran out and a peer took it
                finished = conn.execute(
                    "UPDATE jobs SET state = ?, result = ?, owner = NULL"
                    " WHERE id = ? AND state = 'running' AND owner = ?",
                    (state, json.dumps(result), job_id, self.owner),
                ).rowcount
                if finished and url:
                    conn.execute(
                        "INSERT INTO callbacks (job_id, webhook_id, url, body)"
                        " VALUES (?, ?, ?, ?)",
                        (job_id, f"{job_id}.{state}", url, body),
                    )
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        self._relay.wake.set()

    # --8<-- [end:finish]

    # --8<-- [start:lease]
    def _heartbeat(self) -> None:
        """Renew this process's claims; pick up jobs whose owner went silent."""
        while not self._stop.wait(self._lease / 3):
            now = time.time()
            try:
                with closing(self.connect()) as conn:
                    conn.execute(
                        "UPDATE jobs SET lease_until = ?"
                        " WHERE owner = ? AND state = 'running'",
                        (now + self._lease, self.owner),
                    )
                    orphans = conn.execute(
                        "SELECT id FROM jobs"
                        " WHERE state = 'running' AND lease_until < ?",
                        (now,),
                    ).fetchall()
            except sqlite3.Error:
                log.exception("cannot renew job leases")
                continue
            for (job_id,) in orphans:
                self._enqueue(job_id)  # the claim in _run decides who runs it

    # --8<-- [end:lease]

    def _enqueue(self, job_id: str) -> None:
        with self._busy:
            self._pending += 1
        self._queue.put(job_id)

    def _worker(self) -> None:
        while (job_id := self._queue.get()) is not None:
            try:
                if not self._stop.is_set():  # stopping: leave it for the next start
                    self._run(job_id)
            except Exception:
                log.exception("worker failed on job %s", job_id)
            finally:
                with self._busy:
                    self._pending -= 1
                    self._busy.notify_all()

    def _resume(self) -> None:
        """Queue what nobody runs: jobs never started, or whose claim ran out.

        A job another live process is running keeps its lease and is left
        alone. Callbacks owed from before are in the outbox; the relay sends
        them. Work runs at least once.
        """
        with closing(self.connect()) as conn:
            rows = conn.execute(
                "SELECT id FROM jobs WHERE state = 'accepted'"
                " OR (state = 'running' AND lease_until < ?) ORDER BY created_at",
                (time.time(),),
            ).fetchall()
        for (job_id,) in rows:
            self._enqueue(job_id)
        self._relay.wake.set()

    def drain(self, timeout: float) -> bool:
        """Wait until no job is queued or running here and no callback is
        pending; False on timeout."""
        with self._busy:
            return self._busy.wait_for(
                lambda: self._pending == 0 and not self._relay.pending(), timeout
            )

    def close(self, timeout: float = 5.0) -> None:
        """Stop the threads; queued jobs stay ``accepted`` for the next start,
        undelivered callbacks stay in the outbox."""
        self._stop.set()
        self._relay.wake.set()
        for _ in range(len(self._threads) - 2):  # one None per worker
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout)
