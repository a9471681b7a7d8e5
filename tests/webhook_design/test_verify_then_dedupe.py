"""Tests for snippets/webhook_design/verify_then_dedupe.py.

Deliveries travel over real HTTP to a `ThreadingHTTPServer` on loopback; the
replay guard is a real SQLite file. The race between two copies of one
delivery is made deterministic with barriers: the senders start together, and
every copy that passes the dedupe step waits inside the effect until the
other copy arrives, so the check-then-insert version lets both through on
every run. Interoperability is checked both ways against the reference
implementation, the `standardwebhooks` package.
"""

from __future__ import annotations

import base64
import hmac
import json
import math
import platform
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import pytest
import standardwebhooks
from standardwebhooks import Webhook, WebhookVerificationError

from snippets.support.webhook_design_dedupe import BODY, run_race
from snippets.support.webhook_design_endpoint import post_webhook as post
from snippets.webhook_design.verify_then_dedupe import (
    Delivery,
    DeliveryStore,
    Effect,
    VerificationError,
    Verifier,
    WebhookReceiver,
    new_secret,
    parse_secret,
    sign,
    signature_headers,
)
from snippets.webhook_design.verify_then_dedupe.broken import (
    CheckThenInsertStore,
    reserialized,
)
from snippets.webhook_design.verify_then_dedupe.demo import show_interop


@pytest.fixture(scope="module", autouse=True)
def _versions() -> None:
    print(
        f"\nSQLite {sqlite3.sqlite_version}, standardwebhooks "
        f"{standardwebhooks.__version__}, Python {platform.python_version()}"
    )


def counting(outcome: str = "accepted") -> tuple[Effect, list[str]]:
    """An effect that records each delivery it applies."""
    applied: list[str] = []

    def effect(conn: sqlite3.Connection, delivery: Delivery) -> str:
        applied.append(delivery.msg_id)
        return outcome

    return effect, applied


@pytest.fixture
def secret() -> str:
    return new_secret()


@pytest.fixture
def store(tmp_path: Path) -> DeliveryStore:
    return DeliveryStore(tmp_path / "deliveries.db")


@pytest.fixture
def receiver(secret: str, store: DeliveryStore) -> Iterator[tuple[str, list[str]]]:
    effect, applied = counting()
    with WebhookReceiver(Verifier([secret]), store, effect) as running:
        yield running.url, applied


def now() -> int:
    return int(time.time())


# -- interoperability with the reference implementation ---------------------- #


def reference_headers(
    secret: str, msg_id: str, stamp: int, body: bytes
) -> dict[str, str]:
    """Headers signed by `standardwebhooks`, not by the code under test."""
    when = datetime.fromtimestamp(stamp, tz=UTC)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": Webhook(secret).sign(msg_id, when, body.decode()),
    }


def test_our_signature_verifies_with_standardwebhooks(secret: str) -> None:
    headers = signature_headers([secret], "msg_ours", now(), BODY)
    assert Webhook(secret).verify(BODY, headers) == json.loads(BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY.replace(b"10.50", b"99.50"), headers)


def test_standardwebhooks_signature_verifies_with_ours_over_http(
    secret: str, receiver: tuple[str, list[str]]
) -> None:
    url, applied = receiver
    headers = reference_headers(secret, "msg_theirs", now(), BODY)
    assert Verifier([secret]).verify(headers, BODY).msg_id == "msg_theirs"
    assert post(url, headers, BODY) == (200, "accepted")
    assert applied == ["msg_theirs"]
    tampered = headers | {"webhook-id": "msg_other"}  # the id is signed too
    assert post(url, tampered, BODY) == (401, "no matching signature")


def test_both_implementations_produce_the_same_signature(secret: str) -> None:
    stamp = now()
    ours = sign(parse_secret(secret), "msg_same", stamp, BODY)
    theirs = reference_headers(secret, "msg_same", stamp, BODY)["webhook-signature"]
    assert ours == theirs


def test_key_rotation_works_in_both_directions() -> None:
    old, new = new_secret(), new_secret()
    # The sender signs with both keys; a receiver that knows only one accepts.
    both = signature_headers([new, old], "msg_rotate", now(), BODY)
    assert len(both["webhook-signature"].split(" ")) == 2
    assert Webhook(new).verify(BODY, both) is not None
    assert Webhook(old).verify(BODY, both) is not None
    assert Verifier([new]).verify(both, BODY).msg_id == "msg_rotate"
    # The receiver knows both keys; a sender still on the old key is accepted.
    legacy = reference_headers(old, "msg_legacy", now(), BODY)
    assert Verifier([new, old]).verify(legacy, BODY).msg_id == "msg_legacy"
    with pytest.raises(VerificationError, match="no matching signature"):
        Verifier([new]).verify(legacy, BODY)


def test_the_interop_case_reports_agreement_both_ways() -> None:
    lines = show_interop()
    assert [line.rsplit(": ", 1)[1] for line in lines] == ["ok", "ok", "yes"]


# -- verify the raw bytes ----------------------------------------------------- #


def test_a_reserialized_body_fails_verification(secret: str) -> None:
    headers = signature_headers([secret], "msg_json", now(), BODY)
    again = reserialized(BODY)
    assert json.loads(again) == json.loads(BODY)  # the same data ...
    assert again != BODY  # ... but not the same bytes
    with pytest.raises(VerificationError, match="no matching signature"):
        Verifier([secret]).verify(headers, again)
    with pytest.raises(WebhookVerificationError):  # the reference agrees
        Webhook(secret).verify(again, headers)
    assert Verifier([secret]).verify(headers, BODY).body == BODY


@pytest.mark.parametrize(
    "dump",
    [
        lambda data: json.dumps(data, separators=(",", ":")),
        lambda data: json.dumps(data, separators=(",", ":"), ensure_ascii=False),
        lambda data: json.dumps(data, separators=(",", ":"), sort_keys=True),
    ],
    ids=["compact", "compact-unicode", "sorted-keys"],
)
def test_even_a_compact_round_trip_changes_the_bytes(
    secret: str, dump: Callable[[object], str]
) -> None:
    headers = signature_headers([secret], "msg_json", now(), BODY)
    again = dump(json.loads(BODY)).encode()
    assert again != BODY
    with pytest.raises(VerificationError):
        Verifier([secret]).verify(headers, again)


# -- timestamps --------------------------------------------------------------- #


@pytest.mark.parametrize(
    ("age", "reason"),
    [(300, None), (301, "too old"), (-300, None), (-301, "too new")],
)
def test_tolerance_is_five_minutes_in_both_directions(
    secret: str, age: int, reason: str | None
) -> None:
    stamp = 1_700_000_000
    verifier = Verifier([secret], clock=lambda: stamp + age)
    headers = signature_headers([secret], "msg_clock", stamp, BODY)
    if reason is None:
        assert verifier.verify(headers, BODY).timestamp == stamp
    else:
        with pytest.raises(VerificationError, match=reason):
            verifier.verify(headers, BODY)


def test_a_captured_request_replayed_ten_minutes_later(
    secret: str, tmp_path: Path
) -> None:
    """Without a timestamp check a replay gets through once the id is forgotten."""
    captured = signature_headers([secret], "msg_replay", now(), BODY)

    def replay(tolerance: float) -> tuple[int, str]:
        store = DeliveryStore(tmp_path / f"replay-{tolerance}.db")
        effect, _ = counting()
        later = Verifier([secret], tolerance=tolerance, clock=lambda: now() + 600)
        with WebhookReceiver(Verifier([secret]), store, effect) as receiver:
            assert post(receiver.url, captured, BODY) == (200, "accepted")
        assert store.prune(older_than=time.time() + 1) == 1  # retention ran out
        with WebhookReceiver(later, store, effect) as receiver:
            return post(receiver.url, captured, BODY)

    assert replay(tolerance=math.inf) == (200, "accepted")  # without the check
    assert replay(tolerance=300) == (401, "timestamp too old")  # with it


# -- headers and requests that are not deliveries ------------------------------ #


@pytest.mark.parametrize(
    "change",
    [
        {"webhook-id": ""},
        {"webhook-timestamp": "1.7e9"},
        {"webhook-timestamp": "-5"},
        {"webhook-timestamp": "\u0661\u0667" + "\u0660" * 8},  # isdigit() is True
        {"webhook-id": "x" * 257},
    ],
    ids=["empty-id", "float", "negative", "non-ascii-digits", "long-id"],
)
def test_malformed_headers_are_rejected(secret: str, change: dict[str, str]) -> None:
    headers = signature_headers([secret], "msg_bad", now(), BODY) | change
    with pytest.raises(VerificationError, match="malformed"):
        Verifier([secret]).verify(headers, BODY)


def test_signature_entries_the_verifier_does_not_understand_are_skipped(
    secret: str,
) -> None:
    good = signature_headers([secret], "msg_entries", now(), BODY)
    valid = good["webhook-signature"]
    junk = "v1,not-base64!! v2,AAAA v1a,AAAA nocomma"
    verifier = Verifier([secret])
    assert verifier.verify(good | {"webhook-signature": f"{junk} {valid}"}, BODY)
    for only in (junk, valid.replace("v1,", "v1a,"), ""):
        with pytest.raises(VerificationError):
            verifier.verify(good | {"webhook-signature": only}, BODY)


def test_missing_headers_and_oversized_bodies_are_refused_over_http(
    secret: str, receiver: tuple[str, list[str]]
) -> None:
    url, applied = receiver
    assert post(url, {}, BODY) == (401, "missing or malformed webhook headers")
    headers = signature_headers([secret], "msg_big", now(), BODY)
    too_big = headers | {"Content-Length": str(2 << 20)}
    assert post(url, too_big, BODY)[0] == 413
    assert applied == []


@pytest.mark.parametrize(
    "value", [base64.b64encode(b"k" * 23).decode(), "whsec_not base64", "whsec_"]
)
def test_bad_signing_secrets_fail_at_start_up(value: str) -> None:
    with pytest.raises(ValueError):
        parse_secret(value)
    with pytest.raises(ValueError):
        Verifier([value])


def test_a_verifier_needs_a_secret() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Verifier([])


# -- constant-time comparison ------------------------------------------------- #


def test_every_signature_comparison_goes_through_compare_digest(
    secret: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = signature_headers([secret], "msg_ct", now(), BODY)
    forged = headers | {
        "webhook-signature": "v1," + base64.b64encode(bytes(32)).decode()
    }
    verifier = Verifier([secret])
    real = hmac.compare_digest
    seen: list[tuple[bytes, bytes]] = []

    def spy(a: bytes, b: bytes) -> bool:
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    verifier.verify(headers, BODY)
    assert seen and all(len(a) == len(b) == 32 for a, b in seen)
    # The decision is compare_digest's alone: no `==` decides behind its back.
    monkeypatch.setattr(hmac, "compare_digest", lambda a, b: False)
    with pytest.raises(VerificationError):
        verifier.verify(headers, BODY)
    monkeypatch.setattr(hmac, "compare_digest", lambda a, b: True)
    assert verifier.verify(forged, BODY).msg_id == "msg_ct"


# -- the atomic replay guard --------------------------------------------------- #


COPIES = 4


def test_without_the_guard_concurrent_copies_are_all_processed(tmp_path: Path) -> None:
    runs, answers = run_race(CheckThenInsertStore, tmp_path, copies=COPIES)
    assert runs == COPIES
    assert answers == ["200 accepted"] * COPIES


def test_with_the_atomic_claim_concurrent_copies_are_processed_once(
    tmp_path: Path,
) -> None:
    runs, answers = run_race(DeliveryStore, tmp_path, copies=COPIES)
    assert runs == 1
    assert answers == ["200 accepted"] + ["200 duplicate"] * (COPIES - 1)


def test_a_failed_effect_releases_the_claim_for_the_retry(
    secret: str, store: DeliveryStore
) -> None:
    attempts: list[str] = []

    def flaky(conn: sqlite3.Connection, delivery: Delivery) -> str:
        attempts.append(delivery.msg_id)
        conn.execute("CREATE TABLE IF NOT EXISTS effects (msg_id TEXT)")
        conn.execute("INSERT INTO effects VALUES (?)", (delivery.msg_id,))
        if len(attempts) == 1:
            raise RuntimeError("downstream write failed")
        return "accepted"

    headers = signature_headers([secret], "msg_flaky", now(), BODY)
    with WebhookReceiver(Verifier([secret]), store, flaky) as receiver:
        assert post(receiver.url, headers, BODY) == (500, "internal error")
        assert post(receiver.url, headers, BODY) == (200, "accepted")
        assert post(receiver.url, headers, BODY) == (200, "duplicate")
    with closing(store.connect()) as conn:
        assert conn.execute("SELECT count(*) FROM effects").fetchone() == (1,)
    assert attempts == ["msg_flaky", "msg_flaky"]


def test_a_signed_but_malformed_payload_is_parked_with_a_2xx(
    secret: str, store: DeliveryStore
) -> None:
    # A 4xx would make the provider send the same bytes for days; they will
    # never parse. Keep them for a human, and tell the provider to stop.
    with closing(store.connect()) as conn:
        conn.execute("CREATE TABLE effects (msg_id TEXT)")

    def parse(conn: sqlite3.Connection, delivery: Delivery) -> str:
        conn.execute("INSERT INTO effects VALUES (?)", (delivery.msg_id,))
        delivery.payload()  # raises: the effect's own write is rolled back
        return "accepted"

    body = b"{not json"
    headers = signature_headers([secret], "msg_garbled", now(), body)
    with WebhookReceiver(Verifier([secret]), store, parse) as receiver:
        assert post(receiver.url, headers, body) == (200, "parked")
        assert post(receiver.url, headers, body) == (200, "duplicate")
    (parked,) = store.parked()
    assert (parked.msg_id, parked.body) == ("msg_garbled", body)
    assert "JSONDecodeError" in parked.reason
    with closing(store.connect()) as conn:
        assert conn.execute("SELECT count(*) FROM effects").fetchone() == (0,)


def test_prune_forgets_only_old_ids(tmp_path: Path) -> None:
    clock = [1_000.0]
    store = DeliveryStore(tmp_path / "prune.db", clock=lambda: clock[0])
    effect, applied = counting()
    for msg_id, at in (("old", 1_000.0), ("new", 2_000.0)):
        clock[0] = at
        store.accept(Delivery(msg_id, int(at), BODY), effect)
    assert store.prune(older_than=1_500.0) == 1
    assert store.accept(Delivery("new", 0, BODY), effect) == "duplicate"
    assert store.accept(Delivery("old", 0, BODY), effect) == "accepted"
    assert applied == ["old", "new", "old"]


def test_stopping_the_receiver_waits_for_a_request_in_flight(
    secret: str, store: DeliveryStore
) -> None:
    inside, release, done = threading.Event(), threading.Event(), threading.Event()

    def slow(conn: sqlite3.Connection, delivery: Delivery) -> str:
        inside.set()
        release.wait(timeout=5)
        done.set()
        return "accepted"

    answers: list[tuple[int, str]] = []
    headers = signature_headers([secret], "msg_slow", now(), BODY)
    receiver = WebhookReceiver(Verifier([secret]), store, slow)
    with receiver:
        sender = threading.Thread(
            target=lambda: answers.append(post(receiver.url, headers, BODY))
        )
        sender.start()
        assert inside.wait(timeout=5)
        threading.Timer(0.2, release.set).start()  # while the receiver stops
    assert done.is_set(), "the receiver stopped before the request finished"
    sender.join(timeout=5)
    assert answers == [(200, "accepted")]
