"""Tests for snippets/webhook_design/thin_payloads.py.

The provider's API and the webhook receiver are real HTTP servers on loopback.
The replica lag is counted in reads, not in time, so every run sees the same
sequence of answers.
"""

from __future__ import annotations

import functools
import itertools
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from snippets.support.webhook_design_endpoint import serving
from snippets.support.webhook_design_provider import DEMO_TOKEN, ProviderAPI, send_event
from snippets.webhook_design.thin_payloads import (
    CustomerStore,
    EventReceiver,
    NotYetVisible,
    ProviderClient,
    Snapshot,
    ThinEventConsumer,
)
from snippets.webhook_design.thin_payloads.broken import (
    apply_full_payload,
    fetch_once,
    overwrite,
)
from snippets.webhook_design.thin_payloads.demo import CUSTOMER


@pytest.fixture(scope="module", autouse=True)
def sqlite_version() -> None:
    print(f"\nSQLite {sqlite3.sqlite_version} (the local copy's store)")


@contextmanager
def provider(*, lag: int = 0) -> Iterator[ProviderAPI]:
    with serving(ProviderAPI(("127.0.0.1", 0), DEMO_TOKEN, replica_lag=lag)) as api:
        yield api


def client_for(api: ProviderAPI) -> ProviderClient:
    return ProviderClient(api.url, DEMO_TOKEN)


def two_updates(api: ProviderAPI) -> tuple[Snapshot, Snapshot]:
    return api.update("cus_1", **CUSTOMER), api.update("cus_1", plan="pro")


def deliver_all(on_event: Any, events: list[dict[str, Any]]) -> list[int]:
    with serving(EventReceiver(("127.0.0.1", 0), on_event)) as receiver:
        return [send_event(receiver.url, event) for event in events]


# -- see it break ------------------------------------------------------------- #


def test_full_payloads_out_of_order_leave_a_stale_copy(tmp_path: Path) -> None:
    store = CustomerStore(tmp_path / "local.sqlite3")
    with provider() as api:
        v1, v2 = two_updates(api)
        events = [api.full_event(v2), api.full_event(v1)]
        statuses = deliver_all(functools.partial(apply_full_payload, store), events)
    assert statuses == [204, 204]
    assert store.get("cus_1") == v1  # rolled back to the older snapshot
    assert api.audit == []  # nothing was read: the payload was the data


def test_fetching_once_from_a_lagging_replica_stores_an_old_version(
    tmp_path: Path,
) -> None:
    store = CustomerStore(tmp_path / "local.sqlite3")
    with provider(lag=2) as api:
        on_event = functools.partial(fetch_once, store, client_for(api))
        with serving(EventReceiver(("127.0.0.1", 0), on_event)) as receiver:
            v1 = api.update("cus_2", **CUSTOMER)
            first = send_event(receiver.url, api.thin_event(v1))
            assert store.get("cus_2") is None  # the 404 dropped the event
            v2 = api.update("cus_2", plan="pro")
            second = send_event(receiver.url, api.thin_event(v2))
    assert (first, second) == (204, 204)  # both acknowledged: never sent again
    assert store.get("cus_2") == v1


# -- the pattern holds --------------------------------------------------------- #


@pytest.mark.parametrize("order", list(itertools.permutations([0, 1])))
def test_thin_events_end_at_the_current_state_in_any_order(
    tmp_path: Path, order: tuple[int, ...]
) -> None:
    store = CustomerStore(tmp_path / "local.sqlite3")
    with provider() as api:
        snapshots = two_updates(api)
        events = [api.thin_event(snapshots[i]) for i in order]
        consumer = ThinEventConsumer(store, client_for(api))
        statuses = deliver_all(consumer.handle, events)
    assert statuses == [204, 204]
    assert store.get("cus_1") == snapshots[1]
    assert len(api.audit) == 2  # one read per event, each one on record


def test_retrying_until_the_version_is_visible_converges(tmp_path: Path) -> None:
    lag = 2
    store = CustomerStore(tmp_path / "local.sqlite3")
    with provider(lag=lag) as api:
        consumer = ThinEventConsumer(store, client_for(api), attempts=lag + 1)
        with serving(EventReceiver(("127.0.0.1", 0), consumer.handle)) as receiver:
            v1 = api.update("cus_2", **CUSTOMER)
            assert send_event(receiver.url, api.thin_event(v1)) == 204
            v2 = api.update("cus_2", plan="pro")
            assert send_event(receiver.url, api.thin_event(v2)) == 204
    assert store.get("cus_2") == v2
    assert [version for _, version in api.audit] == [None, None, 1, 1, 1, 2]


def test_a_version_that_stays_invisible_is_refused_then_redelivered(
    tmp_path: Path,
) -> None:
    store = CustomerStore(tmp_path / "local.sqlite3")
    with provider(lag=5) as api:
        consumer = ThinEventConsumer(store, client_for(api), attempts=3)
        with serving(EventReceiver(("127.0.0.1", 0), consumer.handle)) as receiver:
            event = api.thin_event(api.update("cus_3", **CUSTOMER))
            assert send_event(receiver.url, event) == 503  # bounded: 3 reads
            assert store.get("cus_3") is None
            assert send_event(receiver.url, event) == 204  # the provider retries
    assert len(api.audit) == 6
    stored = store.get("cus_3")
    assert stored is not None and stored.version == 1


def test_fetch_at_least_raises_after_its_attempts(tmp_path: Path) -> None:
    store = CustomerStore(tmp_path / "local.sqlite3")
    with provider() as api:
        consumer = ThinEventConsumer(store, client_for(api), attempts=2, backoff=0)
        with pytest.raises(NotYetVisible):
            consumer.fetch_at_least("cus_missing", 1)
    assert len(api.audit) == 2


def test_the_version_guard_keeps_a_slow_workers_older_read_out(
    tmp_path: Path,
) -> None:
    # Worker A reads v1, then stalls. The object changes to v2 and worker B
    # stores v2. When A resumes, its v1 must not overwrite v2.
    store = CustomerStore(tmp_path / "local.sqlite3")
    fetched, resume = threading.Event(), threading.Event()

    class StallingClient(ProviderClient):
        def get(self, object_id: str) -> Snapshot | None:
            snapshot = super().get(object_id)
            fetched.set()
            assert resume.wait(timeout=5)
            return snapshot

    with provider() as api:
        v1 = api.update("cus_1", **CUSTOMER)
        slow = ThinEventConsumer(store, StallingClient(api.url, DEMO_TOKEN))
        fast = ThinEventConsumer(store, client_for(api))
        results: list[bool] = []
        worker_a = threading.Thread(
            target=lambda: results.append(slow.handle(api.thin_event(v1)))
        )
        worker_a.start()
        assert fetched.wait(timeout=5)
        v2 = api.update("cus_1", plan="pro")
        assert fast.handle(api.thin_event(v2))
        resume.set()
        worker_a.join(timeout=5)
        assert not worker_a.is_alive()
    assert results == [False]  # A's write was refused
    assert store.get("cus_1") == v2
    overwrite(store, v1)  # what the same late write does without the guard
    assert store.get("cus_1") == v1


def test_the_api_refuses_a_wrong_token(tmp_path: Path) -> None:
    with provider() as api:
        event = api.thin_event(api.update("cus_1", **CUSTOMER))
        consumer = ThinEventConsumer(
            CustomerStore(tmp_path / "local.sqlite3"),
            ProviderClient(api.url, "wrong-token"),
        )
        status = deliver_all(consumer.handle, [event])
    assert status == [503]
    assert api.audit == []


def test_a_body_that_is_not_an_event_is_a_400(tmp_path: Path) -> None:
    store = CustomerStore(tmp_path / "local.sqlite3")
    with provider() as api:
        consumer = ThinEventConsumer(store, client_for(api))
        assert deliver_all(consumer.handle, [{"type": "customer.updated"}]) == [400]


def test_thin_events_are_much_smaller_than_full_ones() -> None:
    with provider() as api:
        v1 = api.update("cus_1", **CUSTOMER)
        full, thin = api.full_event(v1), api.thin_event(v1)
    assert set(thin["data"]) == {"id", "version"}
    assert len(str(thin)) < len(str(full)) / 2
