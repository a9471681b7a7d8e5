"""Saga steps driven by webhook callbacks, against PostgreSQL and real HTTP.

Webhooks reach the orchestrator over HTTP, signed; commands leave through the
outbox to a fake provider, also over HTTP. Races are made deterministic with
a barrier at a named checkpoint inside the orchestrator's transactions: every
racing thread waits there until all have arrived, then all go on at once.
"""

from __future__ import annotations

import functools
import json
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg
import pytest

from snippets.webhook_design.async_request_reply import (
    BackgroundServer,
    new_secret,
    request,
    sign_headers,
)
from snippets.webhook_design.saga_callbacks import (
    ItemLocked,
    NaiveOrchestrator,
    Orchestrator,
    OutOfStock,
    WebhookEndpoint,
    create_schema,
    http_sender,
)
from tests.conftest import OutputCheck, Postgres

WAIT = 10.0  # seconds; every wait in this module is bounded by it
RUNS = 25


# --------------------------------------------------------------------------- #
# Helpers: a barrier at a checkpoint, a fake provider, the environment
# --------------------------------------------------------------------------- #


class Hold:
    """The first arrival of each thread at ``point`` waits for all parties."""

    def __init__(self, point: str, parties: int = 2) -> None:
        self.point = point
        self.barrier = threading.Barrier(parties)
        self._seen: set[int] = set()
        self._lock = threading.Lock()

    def __call__(self, name: str) -> None:
        if name != self.point:
            return
        with self._lock:
            if threading.get_ident() in self._seen:
                return  # a second transition in the same handler goes on
            self._seen.add(threading.get_ident())
        self.barrier.wait(WAIT)


class Held:
    """Mixin: routes the orchestrator's checkpoints to the current `Hold`."""

    hold: Hold | None = None

    def _checkpoint(self, name: str) -> None:
        if self.hold is not None:
            self.hold(name)


class HeldOrchestrator(Held, Orchestrator):
    pass


class HeldNaive(Held, NaiveOrchestrator):
    pass


class _ProviderServer(ThreadingHTTPServer):
    daemon_threads = False
    lock: threading.Lock
    received: dict[str, tuple[str, str]]  # Idempotency-Key -> (command, saga)
    captures: bool  # a charge is captured at once: it can no longer be cancelled


class _ProviderHandler(BaseHTTPRequestHandler):
    server: _ProviderServer

    def do_POST(self) -> None:
        data = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        key = self.headers["Idempotency-Key"]
        command, saga = data["command"], data["saga_id"]
        with self.server.lock:  # a command seen before is not executed again
            captured = ("charge", saga) in self.server.received.values()
            refused = self.server.captures and command == "cancel_payment" and captured
            if not refused:
                self.server.received.setdefault(key, (command, saga))
        text = b"payment already captured" if refused else b""
        self.send_response(409 if refused else 202)  # a charge cannot be undone
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class FakeProvider(BackgroundServer):
    """Payment and fulfilment in one: records each command it executes."""

    def __init__(self, *, captures: bool = False) -> None:
        self._server = _ProviderServer(("127.0.0.1", 0), _ProviderHandler)
        self._server.lock = threading.Lock()
        self._server.received = {}
        self._server.captures = captures
        super().__init__(self._server, "/commands")

    def commands(self, saga_id: uuid.UUID) -> list[str]:
        with self._server.lock:
            found = list(self._server.received.values())
        return [command for command, saga in found if saga == str(saga_id)]


@dataclass
class Env:
    dsn: str
    orchestrator: Orchestrator
    endpoint: WebhookEndpoint
    provider: FakeProvider
    secrets: dict[str, str]  # provider name -> signing secret

    def webhook(
        self,
        event: str,
        saga_id: uuid.UUID,
        webhook_id: str | None = None,
        provider: str | None = None,
    ) -> str:
        """Send a signed webhook; return the answer (``"401 ..."`` if not 200).

        The provider is the one that sends ``event`` unless one is named.
        """
        body = json.dumps({"type": event, "saga_id": str(saga_id)}).encode()
        msg_id = webhook_id or f"evt_{uuid.uuid4().hex}"
        name = provider or (
            "fulfilment" if event.startswith("shipment.") else "payments"
        )
        headers = sign_headers(self.secrets[name], msg_id, body)
        url = f"{self.endpoint.url}/{name}"
        answer = request("POST", url, body=body, headers=headers)
        text = answer.body.decode()
        return text if answer.status == 200 else f"{answer.status} {text}"

    def relay(self) -> Counter[str]:
        return self.orchestrator.relay(http_sender(self.provider.url))

    def add_item(self, sku: str, stock: int) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute("INSERT INTO items (sku, stock) VALUES (%s, %s)", (sku, stock))

    def item(self, sku: str) -> tuple[int, bool]:
        """(stock, locked)."""
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            row = conn.execute(
                "SELECT stock, locked_by IS NOT NULL FROM items WHERE sku = %s", (sku,)
            ).fetchone()
        assert row is not None
        return int(row[0]), bool(row[1])

    def state(self, saga_id: uuid.UUID) -> str:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            row = conn.execute(
                "SELECT state FROM sagas WHERE id = %s", (saga_id,)
            ).fetchone()
        assert row is not None
        return str(row[0])


@contextmanager
def environment(
    postgres: Postgres, naive: bool = False, *, captures: bool = False
) -> Iterator[Env]:
    create_schema(postgres.dsn)
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    print(f"PostgreSQL {row[0] if row else '?'}, psycopg {psycopg.__version__}")
    secrets = {"payments": new_secret(), "fulfilment": new_secret()}
    orchestrator = (HeldNaive if naive else HeldOrchestrator)(postgres.dsn)
    with (
        WebhookEndpoint(orchestrator, secrets) as endpoint,
        FakeProvider(captures=captures) as provider,
    ):
        yield Env(postgres.dsn, orchestrator, endpoint, provider, secrets)


def race(*actions: Callable[[], Any]) -> list[Any]:
    """Run the actions on threads at once; return their results in order."""
    results: list[Any] = [None] * len(actions)
    errors: list[BaseException] = []

    def run(index: int, action: Callable[[], Any]) -> None:
        try:
            results[index] = action()
        except BaseException as error:
            errors.append(error)

    threads = [
        threading.Thread(target=run, args=(index, action))
        for index, action in enumerate(actions)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert not any(thread.is_alive() for thread in threads), "a racer is stuck"
    assert errors == [], errors
    return results


def set_hold(env: Env, hold: Hold | None) -> None:
    assert isinstance(env.orchestrator, Held)
    env.orchestrator.hold = hold


# --------------------------------------------------------------------------- #
# (a) The payment webhook and the timeout at the same moment
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("naive", [True, False], ids=["naive", "guarded"])
def test_success_webhook_races_the_timeout(
    postgres: Postgres, naive: bool, expected_output: OutputCheck
) -> None:
    """Both hold at the transition: after each has read (naive) or before
    either writes (guarded)."""
    tally: Counter[str] = Counter()
    with environment(postgres, naive) as env:
        for run in range(RUNS):
            env.add_item(f"item-{run}", 1)
            saga = env.orchestrator.start(f"item-{run}", 1, 4200, payment_timeout=0)
            set_hold(env, Hold("transition"))
            webhook, timer = race(
                functools.partial(env.webhook, "payment.succeeded", saga),
                env.orchestrator.fire_timeouts,
            )
            set_hold(env, None)
            env.relay()
            sent = set(env.provider.commands(saga))
            history = env.orchestrator.history(saga)
            both = {"ship", "cancel_payment"} <= sent
            tally["both"] += both
            tally["one"] += len({"ship", "cancel_payment"} & sent) == 1
            refunded = "cancel_payment" in sent and "refund" in sent
            recorded = "ship" in sent and ("timeout", "no-op (state paid)") in history
            tally["defined"] += not both and (refunded or recorded)
            assert timer == [(saga, timer[0][1])]
            assert webhook in ("paid", "refunding")
    assert tally["both"] == (RUNS if naive else 0)
    assert tally["one"] == (0 if naive else RUNS)
    assert tally["defined"] == (0 if naive else RUNS)
    name = "NaiveOrchestrator" if naive else "Orchestrator"
    report = [
        f"{name}: {RUNS} runs, payment.succeeded and the timeout at the same moment",
        f"runs with both side effects (ship AND cancel_payment): {tally['both']}",
        f"runs with exactly one: {tally['one']}",
        "loser took its defined path (refund issued, or no-op recorded):"
        f" {tally['defined']}",
    ]
    kind = "naive" if naive else "guarded"
    expected_output(f"webhook_design/saga_callbacks.race-{kind}", "\n".join(report))


# --------------------------------------------------------------------------- #
# (b) The same success webhook twice, at the same moment
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    ("naive", "point", "ships"),
    [(True, "transition", 2), (False, "received", 1)],
    ids=["naive", "guarded"],
)
def test_duplicate_success_callback(
    postgres: Postgres,
    naive: bool,
    point: str,
    ships: int,
    expected_output: OutputCheck,
) -> None:
    """Naive: both copies hold after reading the state. Guarded: both hold
    just before claiming the webhook id in the inbox."""
    with environment(postgres, naive) as env:
        env.add_item("book", 5)
        saga = env.orchestrator.start("book", 1, 4200, payment_timeout=3600)
        set_hold(env, Hold(point))
        answers = race(
            lambda: env.webhook("payment.succeeded", saga, "evt_pay_1"),
            lambda: env.webhook("payment.succeeded", saga, "evt_pay_1"),
        )
        set_hold(env, None)
        env.relay()
        assert env.webhook("shipment.delivered", saga) == "completed"
        env.relay()
        sent = env.provider.commands(saga)
        stock, locked = env.item("book")
    assert sent.count("ship") == ships
    assert sorted(answers) == (["paid", "paid"] if naive else ["duplicate", "paid"])
    assert (stock, locked) == (4, False)
    name = "NaiveOrchestrator" if naive else "Orchestrator"
    report = [
        f"{name}: two copies of payment.succeeded (webhook-id evt_pay_1) at once",
        f"answers: {', '.join(sorted(answers))}",
        f"ship commands sent to fulfilment: {sent.count('ship')}",
    ]
    kind = "naive" if naive else "guarded"
    expected_output(
        f"webhook_design/saga_callbacks.duplicate-{kind}", "\n".join(report)
    )


# --------------------------------------------------------------------------- #
# (c) Two sagas for the last item in stock
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("naive", [True, False], ids=["naive", "guarded"])
def test_two_sagas_on_the_last_item(
    postgres: Postgres, naive: bool, expected_output: OutputCheck
) -> None:
    """Both sagas hold inside their start transaction, at the reservation."""
    with environment(postgres, naive) as env:
        env.add_item("last-one", 1)

        def start() -> uuid.UUID | str:
            try:
                return env.orchestrator.start("last-one", 1, 4200, payment_timeout=60)
            except (ItemLocked, OutOfStock) as error:
                return type(error).__name__

        set_hold(env, Hold("reserve"))
        outcomes = race(start, start)
        set_hold(env, None)
        sagas = [saga for saga in outcomes if isinstance(saga, uuid.UUID)]
        refused = sorted(str(saga) for saga in outcomes if isinstance(saga, str))
        for saga in sagas:
            assert env.webhook("payment.succeeded", saga) == "paid"
        env.relay()
        for saga in sagas:
            assert env.webhook("shipment.delivered", saga) == "completed"
        shipped = sum(env.provider.commands(saga).count("ship") for saga in sagas)
        stock, locked = env.item("last-one")
        later = start()
    assert len(sagas) == (2 if naive else 1)
    assert refused == ([] if naive else ["ItemLocked"])
    assert (shipped, stock, locked) == ((2, -1, False) if naive else (1, 0, False))
    assert later == "OutOfStock"
    name = "NaiveOrchestrator" if naive else "Orchestrator"
    report = [
        f"{name}: stock 1, two sagas start at the same moment",
        f"started: {len(sagas)}, refused: {', '.join(refused) or 'none'}",
        f"shipped: {shipped}, stock afterwards: {stock}",
        f"a third saga afterwards: {later}",
    ]
    kind = "naive" if naive else "guarded"
    expected_output(f"webhook_design/saga_callbacks.stock-{kind}", "\n".join(report))


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


def show(
    history: list[tuple[str, str]], sent: list[str], item: tuple[int, bool]
) -> str:
    lines = [f"{event:<19} {outcome}" for event, outcome in history]
    lines.append(f"commands sent: {', '.join(sent)}")
    lines.append(f"stock: {item[0]}, semantic lock held: {'yes' if item[1] else 'no'}")
    return "\n".join(lines)


def test_happy_path_then_a_late_timer(
    postgres: Postgres, expected_output: OutputCheck
) -> None:
    with environment(postgres) as env:
        env.add_item("lamp", 3)
        saga = env.orchestrator.start("lamp", 1, 4200, payment_timeout=0)
        assert env.item("lamp") == (3, True)
        assert env.webhook("payment.succeeded", saga) == "paid"
        env.relay()
        assert env.webhook("shipment.delivered", saga) == "completed"
        assert env.orchestrator.fire_timeouts() == [(saga, "no-op")]
        env.relay()
        text = show(
            env.orchestrator.history(saga),
            env.provider.commands(saga),
            env.item("lamp"),
        )
        assert env.state(saga) == "completed"
    assert env.item("lamp") == (2, False)
    expected_output("webhook_design/saga_callbacks.happy-path", text)


def test_a_late_payment_is_refunded(
    postgres: Postgres, expected_output: OutputCheck
) -> None:
    with environment(postgres) as env:
        env.add_item("chair", 1)
        saga = env.orchestrator.start("chair", 1, 4200, payment_timeout=0)
        assert env.orchestrator.fire_timeouts() == [(saga, "cancelled")]
        assert env.item("chair") == (1, False)  # free for the next saga
        assert env.webhook("payment.succeeded", saga) == "refunding"
        assert env.webhook("payment.succeeded", saga) == "no-op"  # a new webhook-id
        env.relay()
        assert env.webhook("refund.succeeded", saga) == "refunded"
        text = show(
            env.orchestrator.history(saga),
            env.provider.commands(saga),
            env.item("chair"),
        )
        assert env.state(saga) == "refunded"
    expected_output("webhook_design/saga_callbacks.late-payment", text)


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
        forged = sign_headers(new_secret(), "evt_forged", body)
        answer = request("POST", payments, body=body, headers=forged)
        assert answer.status == 401
        posing = sign_headers(env.secrets["fulfilment"], "evt_posing", body)
        answer = request("POST", payments, body=body, headers=posing)
        assert answer.status == 401  # one provider cannot speak for another
        answer = request("POST", f"{env.endpoint.url}/acme", body=body, headers=posing)
        assert answer.status == 404
        assert env.webhook("payment.succeeded", uuid.uuid4()).startswith("404")
        assert env.webhook("charge.dispute.created", saga) == "ignored"
        malformed = b'{"type": "payment.succeeded", "saga_id": "not-a-uuid"}'
        headers = sign_headers(env.secrets["payments"], "evt_bad", malformed)
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
