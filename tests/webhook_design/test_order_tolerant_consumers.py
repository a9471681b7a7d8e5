"""Tests for snippets/webhook_design/order_tolerant_consumers.py.

Every event is a signed delivery sent over real HTTP to a `ThreadingHTTPServer`
on loopback, which claims it in a real SQLite file and applies it. Arrival
orders are enumerated (all 24 orders of four events) or drawn with a seeded
`random.Random`, so every run sends the same sequences. The PostgreSQL test
races two transactions on one row; the second is known to be waiting on the
first one's row lock (`pg_stat_activity`) before the first commits.
"""

from __future__ import annotations

import platform
import random
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from itertools import permutations
from pathlib import Path

import psycopg
import pytest

from snippets.support.webhook_design_endpoint import post_webhook as post
from snippets.support.webhook_design_subscriptions import (
    Consumer,
    consumer,
    race_on_postgres,
)
from snippets.webhook_design.order_tolerant_consumers import (
    ORDERS,
    STATUSES,
    Update,
    apply_checked_in_python_pg,
    apply_if_newer,
    apply_if_newer_pg,
    apply_last_write_wins,
)
from snippets.webhook_design.verify_then_dedupe import (
    Delivery,
    new_secret,
    signature_headers,
)
from tests.conftest import Postgres

NEWEST = (STATUSES[4], 4)


@pytest.fixture(scope="module", autouse=True)
def _versions() -> None:
    print(f"\nSQLite {sqlite3.sqlite_version}, Python {platform.python_version()}")


@pytest.fixture
def last_write_wins(tmp_path: Path) -> Iterator[Consumer]:
    with consumer(tmp_path, apply_last_write_wins, new_secret()) as running:
        yield running


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[Consumer]:
    with consumer(tmp_path, apply_if_newer, new_secret()) as running:
        yield running


# -- see it break --------------------------------------------------------------- #


def test_without_the_guard_v1_after_v2_rolls_the_state_back(
    last_write_wins: Consumer,
) -> None:
    assert last_write_wins.deliver("sub_1", [2, 1]) == ["applied", "applied"]
    assert last_write_wins.state("sub_1") == (STATUSES[1], 1)


def test_without_the_guard_the_last_arrival_wins_in_every_order(
    last_write_wins: Consumer,
) -> None:
    finals = []
    for number, order in enumerate(ORDERS):
        last_write_wins.deliver(f"sub_{number}", order)
        final = last_write_wins.state(f"sub_{number}")
        assert final == (STATUSES[order[-1]], order[-1])
        finals.append(final)
    lost = sum(final != NEWEST for final in finals)
    assert len(ORDERS) == 24
    assert lost == sum(order[-1] != 4 for order in permutations(STATUSES))
    assert lost > 0


# -- the pattern holds ----------------------------------------------------------- #


def test_with_the_guard_v1_after_v2_is_stale(guarded: Consumer) -> None:
    assert guarded.deliver("sub_1", [2, 1]) == ["applied", "stale"]
    assert guarded.state("sub_1") == (STATUSES[2], 2)


def test_with_the_guard_every_order_ends_at_the_newest_state(
    guarded: Consumer,
) -> None:
    wrong = []
    for number, order in enumerate(ORDERS):
        guarded.deliver(f"sub_{number}", order)
        if guarded.state(f"sub_{number}") != NEWEST:
            wrong.append(order)
    assert wrong == []


def expected_answers(arrivals: Sequence[int]) -> Counter[str]:
    """What the pattern must answer, worked out without a database."""
    seen: set[int] = set()
    newest = 0
    answers: Counter[str] = Counter()
    for version in arrivals:
        if version in seen:
            answers["duplicate"] += 1
        elif version > newest:
            answers["applied"] += 1
        else:
            answers["stale"] += 1
        seen.add(version)
        newest = max(newest, version)
    return answers


@pytest.mark.parametrize("seed", range(5))
def test_retries_in_a_random_order_are_applied_once_and_in_order(
    guarded: Consumer, seed: int
) -> None:
    arrivals = [*STATUSES, *STATUSES, *STATUSES]  # every event three times
    random.Random(seed).shuffle(arrivals)
    answers = Counter(guarded.deliver("sub_retry", arrivals))
    assert guarded.state("sub_retry") == NEWEST
    assert answers == expected_answers(arrivals)
    assert answers["duplicate"] == 2 * len(STATUSES)


def test_concurrent_deliveries_for_one_object_end_at_the_newest(
    guarded: Consumer,
) -> None:
    start = threading.Barrier(len(STATUSES))
    answers: list[str] = []

    def send(version: int) -> None:
        start.wait(timeout=5)
        answers.extend(guarded.deliver("sub_parallel", [version]))

    senders = [threading.Thread(target=send, args=(v,)) for v in STATUSES]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join(timeout=10)
    assert guarded.state("sub_parallel") == NEWEST
    assert sorted(set(answers)) <= ["applied", "stale"]
    assert len(answers) == len(STATUSES) and "applied" in answers


def test_a_malformed_update_is_parked_and_changes_nothing(guarded: Consumer) -> None:
    body = (
        b'{"type":"subscription.updated","data":{"id":"s","status":"x","version":"2"}}'
    )
    headers = signature_headers([guarded.secret], "evt_bad", int(time.time()), body)
    assert post(guarded.url, headers, body) == (200, "parked")  # no retries for days
    assert [parked.msg_id for parked in guarded.store.parked()] == ["evt_bad"]
    assert guarded.state("s") is None


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"data":{"id":"s","version":2}}',
        b'{"data":{"id":"s","status":"x","version":true}}',
        b'{"data":{"id":"s","status":"x","version":2.0}}',
        b'{"data":[]}',
    ],
    ids=["not-json", "no-status", "bool-version", "float-version", "data-is-a-list"],
)
def test_update_parse_refuses_what_it_cannot_order(body: bytes) -> None:
    with pytest.raises(ValueError):
        Update.parse(Delivery("evt", 0, body))


# -- PostgreSQL: where the guard must live ---------------------------------------- #


def server_version(dsn: str) -> str:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    assert row is not None
    print(f"\nPostgreSQL {row[0]}")
    return str(row[0])


def test_postgres_compare_in_python_loses_the_newer_update(postgres: Postgres) -> None:
    server_version(postgres.dsn)
    final, stored = race_on_postgres(postgres.dsn, apply_checked_in_python_pg)
    assert stored == {4: True, 3: True}  # both passed the check on version 2
    assert final == (STATUSES[3], 3)


def test_postgres_guard_in_the_statement_keeps_the_newer_update(
    postgres: Postgres,
) -> None:
    server_version(postgres.dsn)
    final, stored = race_on_postgres(postgres.dsn, apply_if_newer_pg)
    assert stored == {4: True, 3: False}  # re-checked against the committed v4
    assert final == NEWEST
