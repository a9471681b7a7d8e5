"""Harness for the boto3 page: no network, dummy credentials, counted builds.

`offline_aws()` points boto3 at nothing real: dummy credentials in the
environment, no config or credentials files, the instance-metadata lookup
disabled. Clients are created with ``endpoint_url`` on 127.0.0.1 and never
called, so no request leaves the machine.

`counting()` counts how often boto3 builds a `Session` and how often botocore
builds a credential resolver (the lazily created ``credential_provider``
component), by wrapping the two constructors; the originals still run.
`together()` starts threads behind a barrier so they race on every run.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.metadata import version
from typing import Any

import boto3
import boto3.session
import botocore.session

__all__ = [
    "LOCAL_ENDPOINT",
    "Race",
    "counting",
    "offline_aws",
    "together",
    "versions",
]

# Nothing listens on the discard port: clients are created here, never called.
LOCAL_ENDPOINT = "http://127.0.0.1:9"

_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}


def versions() -> str:
    """The boto3 and botocore versions installed."""
    return f"boto3 {version('boto3')}, botocore {version('botocore')}"


@contextmanager
def offline_aws() -> Iterator[None]:
    """Dummy credentials and no AWS lookups; the default session starts cold."""
    saved = {name: os.environ.get(name) for name in _ENV}
    os.environ.update(_ENV)
    boto3.DEFAULT_SESSION = None
    try:
        yield
    finally:
        boto3.DEFAULT_SESSION = None
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def counting() -> Iterator[Counter[str]]:
    """Count ``session`` and ``credential_resolver`` builds while inside."""
    counts: Counter[str] = Counter()
    lock = threading.Lock()
    session_init = boto3.session.Session.__init__
    make_resolver = botocore.session.Session._create_credential_resolver

    def counted_init(self: Any, *args: Any, **kwargs: Any) -> None:
        with lock:
            counts["session"] += 1
        session_init(self, *args, **kwargs)

    def counted_resolver(self: Any) -> Any:
        with lock:
            counts["credential_resolver"] += 1
        return make_resolver(self)

    boto3.session.Session.__init__ = counted_init
    botocore.session.Session._create_credential_resolver = counted_resolver
    try:
        yield counts
    finally:
        boto3.session.Session.__init__ = session_init
        botocore.session.Session._create_credential_resolver = make_resolver


class Race:
    """What the threads of one `together()` run returned or raised."""

    def __init__(self) -> None:
        self.results: list[Any] = []
        self.errors: Counter[str] = Counter()
        self._lock = threading.Lock()

    def add(self, result: object) -> None:
        with self._lock:
            self.results.append(result)

    def fail(self, error: BaseException) -> None:
        with self._lock:
            self.errors[f"{type(error).__name__}: {error}"] += 1


def together(threads: int, target: Callable[[], object]) -> Race:
    """Run `target` on `threads` threads released at the same moment."""
    start = threading.Barrier(threads)
    race = Race()

    def worker() -> None:
        start.wait(timeout=10)
        try:
            race.add(target())
        except Exception as error:  # counted and shown, not hidden
            race.fail(error)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=60)
        if thread.is_alive():
            raise TimeoutError("a thread creating a client is stuck")
    return race
