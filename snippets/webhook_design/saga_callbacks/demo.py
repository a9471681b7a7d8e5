"""The cases the saga-callbacks page shows, against a real PostgreSQL.

``python -m snippets.webhook_design.saga_callbacks.demo <case>``, where case
is ``race-naive``, ``race-guarded``, ``duplicate-naive``,
``duplicate-guarded``, ``stock-naive``, ``stock-guarded``, ``happy-path`` or
``late-payment``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from snippets.support import services
from snippets.support.cases import Case, run_cases
from snippets.support.webhook_design_saga_cases import (
    Walk,
    duplicate_callback,
    happy_path,
    late_payment,
    race_runs,
    two_sagas,
)

__all__: list[str] = []


def _name(naive: bool) -> str:
    return "NaiveOrchestrator" if naive else "Orchestrator"


def show_race(naive: bool) -> list[str]:
    with services.postgres() as postgres:
        tally = race_runs(postgres, naive)
    return [
        f"{_name(naive)}: {tally['runs']} runs, payment.succeeded and the timeout"
        " at the same moment",
        f"runs with both side effects (ship AND cancel_payment): {tally['both']}",
        f"runs with exactly one: {tally['one']}",
        "loser took its defined path (refund issued, or no-op recorded):"
        f" {tally['defined']}",
    ]


def show_duplicate(naive: bool) -> list[str]:
    with services.postgres() as postgres:
        result = duplicate_callback(postgres, naive)
    return [
        f"{_name(naive)}: two copies of payment.succeeded (webhook-id evt_pay_1)"
        " at once",
        f"answers: {', '.join(result.answers)}",
        f"ship commands sent to fulfilment: {result.ships}",
    ]


def show_stock(naive: bool) -> list[str]:
    with services.postgres() as postgres:
        result = two_sagas(postgres, naive)
    return [
        f"{_name(naive)}: stock 1, two sagas start at the same moment",
        f"started: {result.started}, refused: {', '.join(result.refused) or 'none'}",
        f"shipped: {result.shipped}, stock afterwards: {result.item[0]}",
        f"a third saga afterwards: {result.later}",
    ]


def show_walk(scenario: Callable[[services.Postgres], Walk]) -> list[str]:
    with services.postgres() as postgres:
        walk = scenario(postgres)
    lines = [f"{event:<19} {outcome}" for event, outcome in walk.history]
    lines.append(f"commands sent: {', '.join(walk.sent)}")
    held = "yes" if walk.item[1] else "no"
    lines.append(f"stock: {walk.item[0]}, semantic lock held: {held}")
    return lines


CASES: dict[str, Case] = {
    "race-naive": lambda: show_race(naive=True),
    "race-guarded": lambda: show_race(naive=False),
    "duplicate-naive": lambda: show_duplicate(naive=True),
    "duplicate-guarded": lambda: show_duplicate(naive=False),
    "stock-naive": lambda: show_stock(naive=True),
    "stock-guarded": lambda: show_stock(naive=False),
    "happy-path": lambda: show_walk(happy_path),
    "late-payment": lambda: show_walk(late_payment),
}

if __name__ == "__main__":
    sys.exit(run_cases(CASES))
