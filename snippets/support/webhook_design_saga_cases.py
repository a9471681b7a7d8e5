"""The scenarios the saga-callbacks page shows, on the harness of
``webhook_design_saga``: each returns what happened, so that the tests can
assert it and the demo can print it."""

from __future__ import annotations

import functools
import uuid
from collections import Counter
from dataclasses import dataclass

from snippets.support.services import Postgres
from snippets.support.webhook_design_saga import (
    RUNS,
    Hold,
    Item,
    environment,
    race,
)
from snippets.webhook_design.saga_callbacks import ItemLocked, OutOfStock

__all__ = [
    "Duplicate",
    "LastItem",
    "Walk",
    "duplicate_callback",
    "happy_path",
    "late_payment",
    "race_runs",
    "two_sagas",
]


# --------------------------------------------------------------------------- #
# The scenarios the page shows
# --------------------------------------------------------------------------- #


def race_runs(postgres: Postgres, naive: bool, runs: int = RUNS) -> Counter[str]:
    """``payment.succeeded`` and the timeout at once, ``runs`` times; count.

    ``both``: ship and cancel_payment were both sent. ``one``: exactly one.
    ``defined``: one, and the loser took its path (a refund, or a recorded
    no-op). ``timer``: the sweep fired exactly once. ``runs``: the runs.
    """
    tally: Counter[str] = Counter()
    with environment(postgres, naive) as env:
        for run in range(runs):
            env.add_item(f"item-{run}", 1)
            saga = env.orchestrator.start(f"item-{run}", 1, 4200, payment_timeout=0)
            env.hold(Hold("transition"))
            _, timer = race(
                functools.partial(env.webhook, "payment.succeeded", saga),
                env.orchestrator.fire_timeouts,
            )
            env.hold(None)
            env.relay()
            sent = set(env.provider.commands(saga))
            history = env.orchestrator.history(saga)
            both = {"ship", "cancel_payment"} <= sent
            refunded = "cancel_payment" in sent and "refund" in sent
            recorded = "ship" in sent and ("timeout", "no-op (state paid)") in history
            tally["runs"] += 1
            tally["both"] += both
            tally["one"] += len({"ship", "cancel_payment"} & sent) == 1
            tally["defined"] += not both and (refunded or recorded)
            tally["timer"] += len(timer) == 1 and timer[0][0] == saga
    return tally


@dataclass(frozen=True)
class Duplicate:
    answers: list[str]  # sorted
    ships: int
    item: Item


def duplicate_callback(postgres: Postgres, naive: bool) -> Duplicate:
    """Two copies of one ``payment.succeeded`` at once, then delivery.

    Naive: both copies hold after reading the state. Guarded: both hold just
    before claiming the webhook id in the inbox.
    """
    with environment(postgres, naive) as env:
        env.add_item("book", 5)
        saga = env.orchestrator.start("book", 1, 4200, payment_timeout=3600)
        env.hold(Hold("transition" if naive else "received"))
        answers = race(
            lambda: env.webhook("payment.succeeded", saga, "evt_pay_1"),
            lambda: env.webhook("payment.succeeded", saga, "evt_pay_1"),
        )
        env.hold(None)
        env.relay()
        env.webhook("shipment.delivered", saga)
        env.relay()
        return Duplicate(
            sorted(answers), env.provider.commands(saga).count("ship"), env.item("book")
        )


@dataclass(frozen=True)
class LastItem:
    started: int
    refused: list[str]  # sorted error names
    shipped: int
    item: Item
    later: str  # what a third saga afterwards got


def two_sagas(postgres: Postgres, naive: bool) -> LastItem:
    """Stock 1; two sagas start at once, held at the reservation; both are
    then paid and delivered, and a third saga tries afterwards."""
    with environment(postgres, naive) as env:
        env.add_item("last-one", 1)

        def start() -> uuid.UUID | str:
            try:
                return env.orchestrator.start("last-one", 1, 4200, payment_timeout=60)
            except (ItemLocked, OutOfStock) as error:
                return type(error).__name__

        env.hold(Hold("reserve"))
        outcomes = race(start, start)
        env.hold(None)
        sagas = [saga for saga in outcomes if isinstance(saga, uuid.UUID)]
        refused = sorted(str(saga) for saga in outcomes if isinstance(saga, str))
        for saga in sagas:
            env.webhook("payment.succeeded", saga)
        env.relay()
        for saga in sagas:
            env.webhook("shipment.delivered", saga)
        shipped = sum(env.provider.commands(saga).count("ship") for saga in sagas)
        item = env.item("last-one")
        return LastItem(len(sagas), refused, shipped, item, str(start()))


@dataclass(frozen=True)
class Walk:
    """One saga, step by step: each answer, its log, its commands, the item."""

    answers: list[str]
    history: list[tuple[str, str]]
    sent: list[str]
    item: Item
    state: str


def happy_path(postgres: Postgres) -> Walk:
    """Paid and delivered before the deadline; then the timer fires late."""
    with environment(postgres) as env:
        env.add_item("lamp", 3)
        saga = env.orchestrator.start("lamp", 1, 4200, payment_timeout=0)
        answers = [f"item {env.item('lamp')}"]
        answers.append(env.webhook("payment.succeeded", saga))
        env.relay()
        answers.append(env.webhook("shipment.delivered", saga))
        answers += [outcome for _, outcome in env.orchestrator.fire_timeouts()]
        env.relay()
        return Walk(
            answers,
            env.orchestrator.history(saga),
            env.provider.commands(saga),
            env.item("lamp"),
            env.state(saga),
        )


def late_payment(postgres: Postgres) -> Walk:
    """The timer cancels first; the payment arrives twice afterwards."""
    with environment(postgres) as env:
        env.add_item("chair", 1)
        saga = env.orchestrator.start("chair", 1, 4200, payment_timeout=0)
        answers = [outcome for _, outcome in env.orchestrator.fire_timeouts()]
        answers.append(f"item {env.item('chair')}")
        answers.append(env.webhook("payment.succeeded", saga))
        answers.append(env.webhook("payment.succeeded", saga))  # a new webhook-id
        env.relay()
        answers.append(env.webhook("refund.succeeded", saga))
        return Walk(
            answers,
            env.orchestrator.history(saga),
            env.provider.commands(saga),
            env.item("chair"),
            env.state(saga),
        )
