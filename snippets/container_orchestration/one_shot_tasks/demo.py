"""The cases the one-shot-tasks page shows, on a local PostgreSQL.

    python -m snippets.container_orchestration.one_shot_tasks.demo CASE

``race`` starts 8 replicas together, without and with the advisory lock;
``crash`` kills the replica that holds the lock in the middle of a migration.
"""

from __future__ import annotations

import sys

from snippets.support import services
from snippets.support.cases import run_cases
from snippets.support.container_orchestration_migrations import crash, race_lines

__all__: list[str] = []  # the cases a page shows; the API is the package


def show_race() -> list[str]:
    """8 replicas start together, without and with the advisory lock."""
    with services.postgres() as pg:
        return race_lines(pg.dsn, pg.schema)


def show_crash() -> list[str]:
    """A replica killed while it holds the lock, in the middle of a migration."""
    with services.postgres() as pg:
        return crash(pg.dsn, f"schema-migrations:{pg.schema}").lines


if __name__ == "__main__":
    sys.exit(run_cases({"crash": show_crash, "race": show_race}))
