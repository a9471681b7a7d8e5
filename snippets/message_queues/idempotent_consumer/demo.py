"""The cases the idempotent-consumer page shows, and the handlers that break.

    python -m snippets.message_queues.idempotent_consumer.demo CASE

Each case runs against PostgreSQL (and RabbitMQ for the crashes) with names of
its own.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import psycopg

from snippets.message_queues.idempotent_consumer import (
    Conn,
    Credit,
    Handler,
    apply_credit,
    credit_once,
)
from snippets.support import message_queues_inbox as harness
from snippets.support import services
from snippets.support.cases import Case, run_cases

__all__: list[str] = []


# --8<-- [start:naive]
def credit_without_dedupe(conn: Conn, consumer: str, credit: Credit) -> bool:
    """Anti-pattern: apply every delivery. A redelivered message credits twice."""
    apply_credit(conn, credit)
    return True


# --8<-- [end:naive]


# --8<-- [start:check-then-act]
def credit_if_unseen(conn: Conn, consumer: str, credit: Credit) -> bool:
    """Anti-pattern: look for the id, then act.

    Two transactions that run at once both see no row, so both apply the credit.
    The unique index stops the second marker, but not the second effect.
    """
    seen = conn.execute(
        "SELECT 1 FROM inbox WHERE consumer = %s AND message_id = %s",
        (consumer, credit.message_id),
    ).fetchone()
    if seen:
        return False
    apply_credit(conn, credit)
    conn.execute(
        "INSERT INTO inbox (consumer, message_id) VALUES (%s, %s)"
        " ON CONFLICT DO NOTHING",
        (consumer, credit.message_id),
    )
    return True


# --8<-- [end:check-then-act]


# --8<-- [start:separate-store]
def mark_in_separate_store(marker: Conn) -> Handler:
    """Anti-pattern: dedupe in another transaction (another connection, or Redis).

    The marker commits at once, the credit commits later with the caller's
    transaction. A crash between the two leaves the marker and loses the credit:
    the redelivery is skipped as a duplicate.
    """

    def handle(conn: Conn, consumer: str, credit: Credit) -> bool:
        first = marker.execute(  # autocommit: this commits now
            "INSERT INTO inbox (consumer, message_id) VALUES (%s, %s)"
            " ON CONFLICT DO NOTHING RETURNING 1",
            (consumer, credit.message_id),
        ).fetchone()
        if first is None:
            return False
        apply_credit(conn, credit)
        return True

    return handle


# --8<-- [end:separate-store]


CRASHES = {
    "without-inbox": (
        "credit_without_dedupe",
        "after-commit",
        "after commit, before ack",
    ),
    "with-inbox": ("credit_once", "after-commit", "after commit, before ack"),
    "separate-store": (
        "mark_in_separate_store",
        "before-commit",
        "after the marker commit, before the credit",
    ),
}
HANDLERS: dict[str, Callable[[Conn], Handler]] = {
    "credit_without_dedupe": lambda _: credit_without_dedupe,
    "credit_once": lambda _: credit_once,
    "mark_in_separate_store": mark_in_separate_store,
}


def show_crash(case: str) -> list[str]:
    name, mode, crash = CRASHES[case]
    with services.postgres() as pg, services.rabbitmq() as mq:
        redeliveries, bal, _ = harness.run_crash_scenario(
            pg, mq, name, mode, HANDLERS[name]
        )
    flagged = sum(credit.redelivered for credit in redeliveries)
    return [
        f"handler: {name}",
        f"crash: SIGKILL {crash}",
        f"deliveries: {1 + len(redeliveries)} (redelivered: {flagged})",
        f"balance: {bal} after one credit of {harness.AMOUNT}",
    ]


def show_race(handler: Handler) -> list[str]:
    with services.postgres() as pg:
        harness.setup_db(pg)
        first, duplicate = harness.race_in_flight(pg.dsn, handler)
        with psycopg.connect(pg.dsn, autocommit=True) as conn:
            bal = harness.balance(conn)
    return [
        f"handler: {handler.__name__}",
        f"applied: first {first}, duplicate {duplicate}",
        f"balance: {bal} after one credit of {harness.AMOUNT}",
    ]


def show_barrier() -> list[str]:
    rounds = 20
    with services.postgres() as pg:
        harness.setup_db(pg)
        applied, bal = harness.released_together(pg.dsn, credit_once, rounds)
    return [
        "handler: credit_once",
        f"rounds: {rounds}, 2 deliveries per round released by a Barrier",
        f"applied: {sum(applied)} of {len(applied)} deliveries",
        f"balance: {bal} for {rounds} credits of {harness.AMOUNT}",
    ]


def show_retention() -> list[str]:
    with services.postgres() as pg:
        harness.setup_db(pg)
        purged, kept, late, recent, _ = harness.retention(pg.dsn)
    return [
        f"purged: {purged} rows older than 7 days (batches of 2), kept: {kept}",
        f"late duplicate of a purged message applied: {late}",
        f"duplicate of a kept message applied: {recent}",
    ]


def _cases() -> dict[str, Case]:
    def bind(show: Callable[..., list[str]], *args: object) -> Case:
        return lambda: show(*args)

    cases: dict[str, Case] = {
        "barrier-credit_once": show_barrier,
        "retention": show_retention,
        "race-credit_if_unseen": bind(show_race, credit_if_unseen),
        "race-credit_once": bind(show_race, credit_once),
    }
    for case in CRASHES:
        cases[f"crash-{case}"] = bind(show_crash, case)
    return cases


if __name__ == "__main__":
    sys.exit(run_cases(_cases()))
