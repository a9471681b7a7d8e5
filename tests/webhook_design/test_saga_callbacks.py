"""Saga steps driven by webhook callbacks, against PostgreSQL and real HTTP.

Webhooks reach the orchestrator over HTTP, signed; commands leave through the
outbox to a fake provider, also over HTTP. Races are made deterministic with
a barrier at a named checkpoint inside the orchestrator's transactions: every
racing thread waits there until all have arrived, then all go on at once
(see snippets/support/webhook_design_saga.py).
"""

from __future__ import annotations

import functools
import json
import uuid

import psycopg
import pytest

from snippets.support.webhook_design_saga import RUNS, environment, sign
from snippets.support.webhook_design_saga_cases import (
    duplicate_callback,
    happy_path,
    late_payment,
    race_runs,
    two_sagas,
)
from snippets.webhook_design.async_request_reply import request
from snippets.webhook_design.saga_callbacks import ItemLocked, http_sender
from snippets.webhook_design.verify_then_dedupe import new_secret
from tests.conftest import Postgres


@pytest.fixture(scope="module", autouse=True)
def versions() -> None:
    """Print what the tests ran against (visible with ``pytest -s``)."""
    print(f"\npsycopg {psycopg.__version__}")


def test_server_version(postgres: Postgres) -> None:
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    assert row is not None
    print(f"PostgreSQL {row[0]}")


# --------------------------------------------------------------------------- #
# (a) The payment webhook and the timeout at the same moment
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("naive", [True, False], ids=["naive", "guarded"])
def test_success_webhook_races_the_timeout(postgres: Postgres, naive: bool) -> None:
    """Both hold at the transition: after each has read (naive) or before
    either writes (guarded)."""
    tally = race_runs(postgres, naive)
    assert tally["runs"] == tally["timer"] == RUNS
    assert tally["both"] == (RUNS if naive else 0)
    assert tally["one"] == (0 if naive else RUNS)
    assert tally["defined"] == (0 if naive else RUNS)


# --------------------------------------------------------------------------- #
# (b) The same success webhook twice, at the same moment
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("naive", [True, False], ids=["naive", "guarded"])
def test_duplicate_success_callback(postgres: Postgres, naive: bool) -> None:
    result = duplicate_callback(postgres, naive)
    assert result.ships == (2 if naive else 1)
    assert result.answers == (["paid", "paid"] if naive else ["duplicate", "paid"])
    assert result.item == (4, False)


# --------------------------------------------------------------------------- #
# (c) Two sagas for the last item in stock
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("naive", [True, False], ids=["naive", "guarded"])
def test_two_sagas_on_the_last_item(postgres: Postgres, naive: bool) -> None:
    """Both sagas hold inside their start transaction, at the reservation."""
    result = two_sagas(postgres, naive)
    assert result.started == (2 if naive else 1)
    assert result.refused == ([] if naive else ["ItemLocked"])
    assert (result.shipped, result.item) == (
        (2, (-1, False)) if naive else (1, (0, False))
    )
    assert result.later == "OutOfStock"


# --------------------------------------------------------------------------- #
# Providers: shared ids, refusals, outages
# --------------------------------------------------------------------------- #


def test_two_providers_may_reuse_a_webhook_id(postgres: Postgres) -> None:
    """Ids are unique per provider only: the inbox key is (provider, id)."""
    with environment(postgres) as env:
        env.add_item("vase", 1)
        saga = env.orchestrator.start("vase", 1, 4200, payment_timeout=3600)
        assert env.webhook("payment.succeeded", saga, "evt_1") == "paid"
        env.relay()
        assert env.webhook("shipment.delivered", saga, "evt_1") == "completed"
        assert env.webhook("shipment.delivered", saga, "evt_1") == "duplicate"
        assert env.state(saga) == "completed"


def test_a_refused_compensation_takes_its_path_and_blocks_no_one(
    postgres: Postgres,
) -> None:
    """The provider answers 409 to cancel_payment once the charge is captured.
    The refusal moves that saga to a refund; the next saga's charge, queued
    behind the refused command, still goes out."""
    with environment(postgres, captures=True) as env:
        env.add_item("bike", 1)
        env.add_item("bell", 1)
        late = env.orchestrator.start("bike", 1, 4200, payment_timeout=0)
        assert env.relay() == {"sent": 1}  # charge: captured at once
        assert env.orchestrator.fire_timeouts() == [(late, "cancelled")]
        other = env.orchestrator.start("bell", 1, 900, payment_timeout=3600)
        outcomes = env.relay()  # cancel_payment (409), charge, refund
        assert outcomes == {"refused": 1, "sent": 2}
        assert env.provider.commands(other) == ["charge"]
        assert env.provider.commands(late) == ["charge", "refund"]
        assert ("cancel_payment.refused", "cancelled -> refunding") in (
            env.orchestrator.history(late)
        )
        assert env.webhook("payment.succeeded", late) == "no-op"  # refund is out
        assert env.webhook("refund.succeeded", late) == "refunded"
        assert env.webhook("payment.succeeded", other) == "paid"
        assert env.relay() == {"sent": 1}  # ship


def test_a_provider_that_stays_down_parks_the_command(postgres: Postgres) -> None:
    with environment(postgres) as env:
        env.add_item("cup", 1)
        env.orchestrator.start("cup", 1, 100, payment_timeout=3600)
        down = http_sender("http://127.0.0.1:1/commands")  # nothing listens
        relay = functools.partial(
            env.orchestrator.relay, down, retry_in=0, max_attempts=2
        )
        assert relay() == {"retry": 1}
        assert relay() == {"parked": 1}
        assert relay() == {}  # parked: a person looks at it
        assert env.relay() == {}


# --------------------------------------------------------------------------- #
# The state machine, step by step
# --------------------------------------------------------------------------- #

# --------------------------------------------------------------------------- #
# The state machine, step by step
# --------------------------------------------------------------------------- #


def test_happy_path_then_a_late_timer(postgres: Postgres) -> None:
    walk = happy_path(postgres)
    assert walk.answers == ["item (3, True)", "paid", "completed", "no-op"]
    assert walk.sent == ["charge", "ship"]
    assert (walk.state, walk.item) == ("completed", (2, False))
    assert walk.history[-1] == ("timeout", "no-op (state completed)")


def test_a_late_payment_is_refunded(postgres: Postgres) -> None:
    walk = late_payment(postgres)
    assert walk.answers == [
        "cancelled",
        "item (1, False)",  # free for the next saga
        "refunding",
        "no-op",  # a second payment.succeeded, with a new webhook-id
        "refunded",
    ]
    assert walk.sent == ["charge", "cancel_payment", "refund"]
    assert walk.state == "refunded"


def test_payment_failed_releases_the_item(postgres: Postgres) -> None:
    with environment(postgres) as env:
        env.add_item("desk", 1)
        saga = env.orchestrator.start("desk", 1, 4200, payment_timeout=3600)
        with pytest.raises(ItemLocked):
            env.orchestrator.start("desk", 1, 4200, payment_timeout=3600)
        assert env.webhook("payment.failed", saga) == "cancelled"
        assert env.item("desk") == (1, False)
        assert env.orchestrator.fire_timeouts() == []  # not due for an hour
        second = env.orchestrator.start("desk", 1, 4200, payment_timeout=3600)
        assert env.state(second) == "awaiting_payment"


def test_the_endpoint_rejects_what_it_cannot_trust(postgres: Postgres) -> None:
    with environment(postgres) as env:
        env.add_item("pen", 1)
        saga = env.orchestrator.start("pen", 1, 100, payment_timeout=3600)
        body = json.dumps({"type": "payment.succeeded", "saga_id": str(saga)}).encode()
        payments = f"{env.endpoint.url}/payments"
        forged = sign(new_secret(), "evt_forged", body)
        answer = request("POST", payments, body=body, headers=forged)
        assert answer.status == 401
        posing = sign(env.secrets["fulfilment"], "evt_posing", body)
        answer = request("POST", payments, body=body, headers=posing)
        assert answer.status == 401  # one provider cannot speak for another
        answer = request("POST", f"{env.endpoint.url}/acme", body=body, headers=posing)
        assert answer.status == 404
        assert env.webhook("payment.succeeded", uuid.uuid4()).startswith("404")
        assert env.webhook("charge.dispute.created", saga) == "ignored"
        malformed = b'{"type": "payment.succeeded", "saga_id": "not-a-uuid"}'
        headers = sign(env.secrets["payments"], "evt_bad", malformed)
        answer = request("POST", payments, body=malformed, headers=headers)
        assert answer.status == 400
        assert env.state(saga) == "awaiting_payment"  # none of it moved the saga
        assert env.webhook("payment.succeeded", saga) == "paid"


def test_a_failed_send_is_retried_later(postgres: Postgres) -> None:
    with environment(postgres) as env:
        env.add_item("cup", 1)
        env.orchestrator.start("cup", 1, 100, payment_timeout=3600)
        down = http_sender("http://127.0.0.1:1/commands")
        assert env.orchestrator.relay(down, retry_in=0) == {"retry": 1}
        assert env.orchestrator.relay(down, retry_in=3600) == {"retry": 1}
        assert env.relay() == {}  # not due for an hour
