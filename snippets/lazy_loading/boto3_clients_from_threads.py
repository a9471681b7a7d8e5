"""boto3 clients from threads: build the lazy session state once, then share clients.

``boto3.client()`` creates a module-level default `Session` on first use, and a
`Session` builds its parts (credential resolver, endpoint resolver, service
models) lazily on first use too, without a lock. Threads that create clients
at the same moment build those parts more than once. boto3 documents
sessions as not thread safe and clients as generally thread safe, so:

* `thread_client` gives each thread its own session (and caches its clients);
* `make_clients` creates the clients before the threads start, to share;
* `SharedClients` creates each shared client lazily, once, under a lock.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

import boto3
import boto3.session

from snippets.support.cases import run_cases
from snippets.support.lazy_loading_boto3 import (
    LOCAL_ENDPOINT,
    counting,
    offline_aws,
    together,
    versions,
)

__all__ = ["SharedClients", "make_clients", "thread_client"]

THREADS = 8
ROUNDS = 3
SERVICE = "sqs"


# --8<-- [start:naive]
def send_naive() -> Any:
    """What each worker thread does in the broken version."""
    # boto3.client() uses the module-level default session, created on first
    # use by whichever thread gets there first, and shared by all of them.
    return boto3.client(SERVICE, endpoint_url=LOCAL_ENDPOINT)


# --8<-- [end:naive]


# --8<-- [start:per-thread]
_local = threading.local()


def thread_client(service: str, **kwargs: Any) -> Any:
    """This thread's client for `service`, from this thread's own session."""
    clients: dict[str, Any] | None = getattr(_local, "clients", None)
    if clients is None:  # first call on this thread: nobody else sees _local
        _local.session = boto3.session.Session()
        clients = _local.clients = {}
    if service not in clients:
        clients[service] = _local.session.client(service, **kwargs)
    return clients[service]


# --8<-- [end:per-thread]


# --8<-- [start:up-front]
def make_clients(services: Iterable[str], **kwargs: Any) -> dict[str, Any]:
    """Create every client the workers need, on one thread, before they start."""
    session = boto3.session.Session()
    return {service: session.client(service, **kwargs) for service in services}


# --8<-- [end:up-front]


# --8<-- [start:locked]
class SharedClients:
    """Clients created on first use, once each, from one session, under a lock.

    Creating a client touches the session's lazy state, so creation is
    serialized; using a client afterwards needs no lock (clients are
    thread safe once created).
    """

    def __init__(self, **client_kwargs: Any) -> None:
        self._kwargs = client_kwargs
        self._lock = threading.Lock()
        self._session: boto3.session.Session | None = None
        self._clients: dict[str, Any] = {}

    def get(self, service: str) -> Any:
        client = self._clients.get(service)  # fast path: no lock
        if client is not None:
            return client
        with self._lock:
            if service not in self._clients:  # check again under the lock
                if self._session is None:
                    self._session = boto3.session.Session()
                made = self._session.client(service, **self._kwargs)
                self._clients[service] = made  # publish a finished client
            return self._clients[service]


# --8<-- [end:locked]


def _target(strategy: str) -> Callable[[], object]:
    """What each thread runs; whatever is built up front is built here."""
    if strategy == "default":
        return send_naive
    if strategy == "shared":
        shared = boto3.session.Session()
        return lambda: shared.client(SERVICE, endpoint_url=LOCAL_ENDPOINT)
    if strategy == "per_thread":
        return lambda: thread_client(SERVICE, endpoint_url=LOCAL_ENDPOINT)
    if strategy == "up_front":
        clients = make_clients([SERVICE], endpoint_url=LOCAL_ENDPOINT)
        return lambda: clients[SERVICE]
    shared_clients = SharedClients(endpoint_url=LOCAL_ENDPOINT)
    return lambda: shared_clients.get(SERVICE)


def run_rounds(strategy: str, rounds: int = ROUNDS) -> tuple[int, int, int]:
    """Sessions built, credential resolvers built, exceptions: over `rounds`."""
    sessions = resolvers = errors = 0
    for _ in range(rounds):
        with offline_aws(), counting() as built:
            race = together(THREADS, _target(strategy))
        sessions += built["session"]
        resolvers += built["credential_resolver"]
        errors += race.errors.total()
    return sessions, resolvers, errors


def show_race() -> list[str]:
    lines = [f"{versions()}; {THREADS} threads released together, {ROUNDS} rounds"]
    for strategy, label in (
        ("default", "boto3.client() on the default session"),
        ("shared", "session.client() on one shared Session"),
    ):
        sessions, resolvers, errors = run_rounds(strategy)
        lines += [
            f"{label}:",
            f"  exceptions: {errors}",
            f"  sessions built: {_more(sessions)}",
            f"  credential resolvers built: {_more(resolvers)}",
        ]
    return lines


def _more(count: int) -> str:
    """The count if it is one per round; otherwise only that it is more."""
    if count > ROUNDS:
        return f"more than {ROUNDS}, one per round expected"
    return str(count)


def show_fixes() -> list[str]:
    lines = [f"{versions()}; {THREADS} threads released together, {ROUNDS} rounds"]
    for strategy, label in (
        ("per_thread", "a session per thread"),
        ("up_front", "clients created up front, shared"),
        ("locked", "SharedClients (created once, under a lock)"),
    ):
        sessions, resolvers, errors = run_rounds(strategy)
        lines.append(
            f"{label}: {sessions} sessions, {resolvers} credential resolvers, "
            f"{errors} exceptions"
        )
    return lines


if __name__ == "__main__":
    sys.exit(run_cases({"race": show_race, "fixes": show_fixes}))
