"""PostgreSQL scenarios for the lazy-pools demo and tests.

Server connections are counted in ``pg_stat_activity`` by the
``application_name`` each scenario gives its connections. The connection
limit is real: ``limited_role`` creates a login role with ``CONNECTION LIMIT
4``, which PostgreSQL enforces for every role that is not a superuser.
Requests arrive one after another and each holds its connection until the
scenario has counted, so the counts are exact on every run.

This module is the one name the demo and the tests import; the code lives in

- ``lazy_loading_pg_server``: the role, the connection counts, the waits and
  the results;
- ``lazy_loading_pg_threads``: the scenarios with threads;
- ``lazy_loading_pg_asyncio``: the scenarios with asyncio tasks.
"""

from __future__ import annotations

from snippets.support.lazy_loading_pg_asyncio import (
    NaiveAsyncDatabase,
    async_creation_race,
    async_pooled_storm,
    async_unpooled_storm,
)
from snippets.support.lazy_loading_pg_server import (
    LIMIT,
    RACERS,
    REQUESTS,
    TOO_MANY,
    App,
    Postgres,
    Race,
    Result,
    app_for,
    connections,
    limited_role,
    race_line,
    storm_lines,
    until,
    wait_for,
)
from snippets.support.lazy_loading_pg_threads import (
    creation_race,
    pooled_storm,
    unpooled_storm,
)

__all__ = [
    "LIMIT",
    "RACERS",
    "REQUESTS",
    "TOO_MANY",
    "App",
    "NaiveAsyncDatabase",
    "Postgres",
    "Race",
    "Result",
    "app_for",
    "async_creation_race",
    "async_pooled_storm",
    "async_unpooled_storm",
    "connections",
    "creation_race",
    "limited_role",
    "pooled_storm",
    "race_line",
    "storm_lines",
    "unpooled_storm",
    "until",
    "wait_for",
]
