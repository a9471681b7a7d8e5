"""The PostgreSQL side of the lazy-pools scenarios, and what they report.

The application's connection settings, a login role with a real ``CONNECTION
LIMIT``, server connections counted in ``pg_stat_activity`` by their
``application_name``, bounded waits for a count, and the records (and output
lines) the thread and asyncio scenarios return.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

from psycopg import sql
from psycopg.conninfo import make_conninfo

from snippets.lazy_loading.lazy_pools import Connection

__all__ = [
    "LIMIT",
    "RACERS",
    "REQUESTS",
    "TOO_MANY",
    "App",
    "Postgres",
    "Race",
    "Result",
    "app_for",
    "connections",
    "limited_role",
    "race_line",
    "storm_lines",
    "until",
    "wait_for",
]

LIMIT = 4  # the role's CONNECTION LIMIT, and the pools' max_size
REQUESTS = 12
RACERS = 8
TOO_MANY = "too many connections for role"


class Postgres(Protocol):
    """A server URL and a schema of one's own (services.Postgres, or a test's)."""

    @property
    def url(self) -> str: ...

    @property
    def dsn(self) -> str: ...

    @property
    def schema(self) -> str: ...


@dataclass(frozen=True)
class App:
    """How the application connects, and the name its connections carry."""

    dsn: str
    name: str


def app_for(postgres: Postgres) -> App:
    """Connect as the server's user; the schema name marks the connections."""
    return App(
        make_conninfo(postgres.dsn, application_name=postgres.schema), postgres.schema
    )


@contextmanager
def limited_role(postgres: Postgres, admin: Connection) -> Iterator[App]:
    """A login role allowed LIMIT connections, in the schema of `postgres`."""
    role, password = f"{postgres.schema}_app", secrets.token_hex(8)
    admin.execute(
        sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} CONNECTION LIMIT {}").format(
            sql.Identifier(role), sql.Literal(password), sql.Literal(LIMIT)
        )
    )
    admin.execute(
        sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(
            sql.Identifier(postgres.schema), sql.Identifier(role)
        )
    )
    dsn = make_conninfo(
        postgres.dsn, user=role, password=password, application_name=role
    )
    try:
        yield App(dsn, role)
    finally:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
            (role,),
        )
        wait_for(lambda: connections(admin, role) == 0)
        admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def connections(admin: Connection, name: str) -> int:
    """Server connections that carry `name` as their application_name."""
    row = admin.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (name,)
    ).fetchone()
    assert row is not None
    return int(row[0])


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached in {timeout} s")
        time.sleep(0.002)


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.002)


@dataclass
class Result:
    peak: int  # server connections while every request was in
    served: int
    failed: list[str]
    extra: int = 0  # requests queued in the pool at the peak


def storm_lines(title: str, broken: Result, pooled: Result, what: str) -> list[str]:
    reason = broken.failed[0].rsplit("FATAL:", 1)[-1].split('"')[0].strip()
    return [
        title,
        f"  {'a connection per ' + what:<26} {broken.peak:>2} connected,"
        f" {len(broken.failed)} failed: {reason}",
        f"  {f'one pool, max_size {LIMIT}':<26} {pooled.served:>2} served,"
        f" {len(pooled.failed)} failed, at most {pooled.peak} server connections",
    ]


@dataclass
class Race:
    pools: int
    connections: int
    left_open: int  # after the application closed "its" pool


def race_line(label: str, race: Race) -> str:
    pools = "pool" if race.pools == 1 else "pools"
    conns = "connection" if race.connections == 1 else "connections"
    return (
        f"  {label:<15} {race.pools} {pools} created, {race.connections} server"
        f" {conns}; still open after close(): {race.left_open}"
    )
