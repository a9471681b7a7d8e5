"""Thread scenarios of the lazy-pools demo and tests, on a real PostgreSQL.

A storm of requests, each on its own thread, with a connection per request or
one lazily created pool; and racing threads that all ask for the pool the
first time at once. Requests arrive one after another and each holds its
connection until the scenario has counted, so the counts are exact on every
run.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg

from snippets.lazy_loading.lazy_pools import (
    Connection,
    Database,
    LazyPool,
    PoolTimeout,
)
from snippets.lazy_loading.lazy_pools.database import NaiveDatabase
from snippets.lazy_loading.lazy_pools.pool import handle_unpooled
from snippets.support.lazy_loading_pg_server import (
    LIMIT,
    RACERS,
    REQUESTS,
    App,
    Race,
    Result,
    connections,
    wait_for,
)

__all__ = ["creation_race", "pooled_storm", "unpooled_storm"]


@dataclass
class Burst:
    """Requests that hold their connection until the test releases them."""

    release: threading.Event = field(default_factory=threading.Event)
    holding: int = 0
    served: int = 0
    failed: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def work(self, conn: Connection) -> None:
        conn.execute("SELECT 1")
        with self.lock:
            self.holding += 1
        assert self.release.wait(timeout=10)
        with self.lock:
            self.served += 1

    def fail(self, error: Exception) -> None:
        with self.lock:
            self.failed.append(str(error))

    @property
    def arrived(self) -> int:
        return self.holding + len(self.failed)


def storm(
    admin: Connection,
    app: App,
    request: Callable[[Burst], None],
    queued: Callable[[], int] = lambda: 0,
) -> Result:
    """Let REQUESTS requests arrive one by one, count, then let them finish."""
    burst = Burst()
    threads = []
    for arrived in range(1, REQUESTS + 1):
        thread = threading.Thread(target=request, args=(burst,))
        thread.start()
        threads.append(thread)
        wait_for(lambda n=arrived: burst.arrived + queued() == n)  # type: ignore[misc]
    peak, waiting = connections(admin, app.name), queued()
    burst.release.set()
    for thread in threads:
        thread.join(timeout=15)
        assert not thread.is_alive()
    return Result(peak, burst.served, burst.failed, waiting)


def unpooled_storm(admin: Connection, app: App) -> Result:
    def request(burst: Burst) -> None:
        try:
            handle_unpooled(app.dsn, burst.work)
        except psycopg.OperationalError as error:
            burst.fail(error)

    return storm(admin, app, request)


def pooled_storm(admin: Connection, app: App) -> Result:
    db = Database(lambda: LazyPool(app.dsn, max_size=LIMIT, acquire_timeout=10))

    def request(burst: Burst) -> None:
        try:
            with db.pool().connection() as conn:
                burst.work(conn)
        except (psycopg.OperationalError, PoolTimeout) as error:
            burst.fail(error)

    try:
        result = storm(admin, app, request, queued=lambda: db.pool().waiting)
        assert db.pool().size == LIMIT  # it never opened more
    finally:
        db.close()
    return result


def creation_race(
    admin: Connection, app: App, make_db: Callable[..., NaiveDatabase | Database]
) -> Race:
    created: list[LazyPool] = []
    inside = threading.Barrier(RACERS)

    def create() -> LazyPool:
        try:  # hold the window open until every racer is in (with Once
            inside.wait(timeout=0.3)  # only one gets here, and stops waiting)
        except threading.BrokenBarrierError:
            pass
        pool = LazyPool(app.dsn, max_size=LIMIT).warm(1)  # fail fast: connect
        created.append(pool)
        return pool

    db = make_db(create)
    start = threading.Barrier(RACERS)

    def request() -> None:
        start.wait(timeout=10)
        db.pool()

    threads = [threading.Thread(target=request) for _ in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=15)
        assert not thread.is_alive()
    opened = connections(admin, app.name)
    db.pool().close()  # shutdown closes the pool the application knows about
    wait_for(lambda: connections(admin, app.name) == sum(p.size for p in created))
    race = Race(len(created), opened, connections(admin, app.name))
    for pool in created:
        pool.close()
    return race
