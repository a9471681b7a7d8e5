"""The cases the lazy-pools page shows, on a real PostgreSQL.

Run one with ``python -m snippets.lazy_loading.lazy_pools.demo storm``
(``race``, ``asyncio``). Each creates a schema of its own, and ``storm`` and
``asyncio`` a login role limited to four connections.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from snippets.lazy_loading.lazy_pools import AsyncDatabase, Connection, Database
from snippets.lazy_loading.lazy_pools.database import NaiveDatabase
from snippets.support import services
from snippets.support.cases import run_cases
from snippets.support.lazy_loading_pg import (
    LIMIT,
    RACERS,
    REQUESTS,
    App,
    NaiveAsyncDatabase,
    app_for,
    async_creation_race,
    async_pooled_storm,
    async_unpooled_storm,
    connections,
    creation_race,
    limited_role,
    pooled_storm,
    race_line,
    storm_lines,
    unpooled_storm,
    wait_for,
)

__all__: list[str] = []


@contextmanager
def server() -> Iterator[tuple[Connection, App, App]]:
    """A superuser connection, the app as the server's user, the limited app."""
    with (
        services.postgres() as pg,
        psycopg.connect(pg.url, autocommit=True) as admin,
        limited_role(pg, admin) as limited,
    ):
        yield admin, app_for(pg), limited


def show_storm() -> list[str]:
    """Twelve requests at cold start against a role limited to four."""
    with server() as (admin, _, limited):
        broken = unpooled_storm(admin, limited)
        wait_for(lambda: connections(admin, limited.name) == 0)
        pooled = pooled_storm(admin, limited)
    title = f"{REQUESTS} requests at cold start, role limit {LIMIT} connections"
    return storm_lines(title, broken, pooled, "request")


def show_race() -> list[str]:
    """Eight requests race to create the pool, without and with `Once`."""
    lines = [f"{RACERS} requests race to create the pool on first use"]
    with server() as (admin, app, _):
        for label, make_db in (("check-then-act", NaiveDatabase), ("Once", Database)):
            lines.append(race_line(label, creation_race(admin, app, make_db)))
    return lines


def show_asyncio() -> list[str]:
    """The storm and the race with tasks instead of threads."""

    async def scenario(admin: Connection, app: App, limited: App) -> list[str]:
        broken = await async_unpooled_storm(admin, limited)
        await asyncio.to_thread(wait_for, lambda: connections(admin, limited.name) == 0)
        pooled = await async_pooled_storm(admin, limited)
        title = f"asyncio: {REQUESTS} tasks at cold start, role limit {LIMIT}"
        lines = storm_lines(title, broken, pooled, "task")
        lines.append(f"asyncio: {RACERS} tasks race to create the pool")
        for label, make_db in (
            ("check-then-act", NaiveAsyncDatabase),
            ("AsyncOnce", AsyncDatabase),
        ):
            race = await async_creation_race(admin, app, make_db)
            lines.append(race_line(label, race))
        return lines

    with server() as (admin, app, limited):
        return asyncio.run(scenario(admin, app, limited))


if __name__ == "__main__":
    sys.exit(
        run_cases({"asyncio": show_asyncio, "race": show_race, "storm": show_storm})
    )
