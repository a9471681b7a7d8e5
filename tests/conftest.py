"""Fixtures shared by every test: one per real service, and the output check.

Each service fixture connects once per session, hands each test its own names
(queues, streams, keys, schemas) and removes them afterwards. When a service is
not reachable the test is skipped with a reason that says how to start it;
under ``CI=true`` it fails instead, because CI never skips.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import pytest

from snippets.support import services
from snippets.support.services import (
    SERVICES,
    Nats,
    Postgres,
    RabbitMQ,
    Redis,
    ServiceUnavailable,
    service_url,
    unique,
)

ROOT = Path(__file__).resolve().parent.parent
CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

__all__ = [
    "CI",
    "ROOT",
    "SERVICES",
    "Nats",
    "Postgres",
    "RabbitMQ",
    "Redis",
    "require_service",
    "service_url",
    "unavailable",
    "unique",
]


# --------------------------------------------------------------------------- #
# Reaching a service
# --------------------------------------------------------------------------- #


def unavailable(what: str, how_to_fix: str) -> None:
    """Skip locally, fail under CI: nothing is silently skipped in CI."""
    message = f"{what} is not available; {how_to_fix}"
    if CI:
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(message)


def require_service(name: str) -> str:
    """Return the service's URL, or skip/fail with how to start it."""
    try:
        return services.require(name)
    except ServiceUnavailable as error:
        unavailable(SERVICES[name].label, str(error))
        raise


# --------------------------------------------------------------------------- #
# One fixture per service: each hands the test names of its own (see
# snippets/support/services.py, which the demos use too).
# --------------------------------------------------------------------------- #


@pytest.fixture
def postgres() -> Iterator[Postgres]:
    require_service("postgres")
    with services.postgres() as target:
        yield target


@pytest.fixture
def redis() -> Iterator[Redis]:
    require_service("redis")
    with services.redis() as target:
        yield target


@pytest.fixture
def rabbitmq() -> Iterator[RabbitMQ]:
    require_service("rabbitmq")
    with services.rabbitmq() as target:
        yield target


@pytest.fixture
def nats() -> Iterator[Nats]:
    require_service("nats")
    with services.nats() as target:
        yield target


# --------------------------------------------------------------------------- #
# Output shown on a page is output that ran
# --------------------------------------------------------------------------- #


OUTPUT_FILES = sorted((ROOT / "snippets").glob("*/output/*.txt"))
COMPARED: set[Path] = set()


class OutputCheck(Protocol):
    def __call__(self, name: str, actual: str) -> None: ...


@pytest.fixture
def expected_output() -> OutputCheck:
    """Compare a real run with the output file a page shows.

    ``name`` is ``<topic>/<pattern>.<section>``, stored as
    ``snippets/<topic>/output/<pattern>.<section>.txt``. Run the tests with
    ``UPDATE_OUTPUT=1`` to write the files after a deliberate change, then
    review the diff.
    """

    def check(name: str, actual: str) -> None:
        topic, _, stem = name.partition("/")
        path = ROOT / "snippets" / topic / "output" / f"{stem}.txt"
        text = actual if actual.endswith("\n") else actual + "\n"
        COMPARED.add(path)
        if os.environ.get("UPDATE_OUTPUT") == "1":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            return
        assert path.exists(), (
            f"{path.relative_to(ROOT)} does not exist; "
            "run the test once with UPDATE_OUTPUT=1 to create it"
        )
        assert text == path.read_text(), (
            f"the run no longer prints what {path.relative_to(ROOT)} shows; "
            "if the change is intended, rerun with UPDATE_OUTPUT=1 and review the diff"
        )

    return check


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """After a full, green run: every output file a page shows was compared.

    A file no test compares any more would show readers output that no longer
    runs. The check needs the whole suite: it is skipped for a partial run
    (paths, -k, -m, --lf) and when any test was skipped.
    """
    config = session.config
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    partial = (
        exitstatus != 0
        or config.option.keyword
        or config.option.markexpr
        or getattr(config.option, "lf", False)
        or [Path(arg).resolve() for arg in config.args] != [ROOT / "tests"]
        or (reporter is not None and reporter.stats.get("skipped"))
    )
    if partial:
        return
    stale = [path for path in OUTPUT_FILES if path not in COMPARED]
    if stale:
        names = "\n  ".join(str(path.relative_to(ROOT)) for path in stale)
        message = f"output files shown on pages that no test compared:\n  {names}"
        if reporter is not None:
            reporter.write_line(message, red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _service_versions() -> list[str]:
    """The versions of the services the tests will talk to, for the run's header."""
    found = []

    def nats_version(url: str) -> str:
        return asyncio.run(_nats_version(url))

    probes: dict[str, Callable[[str], str]] = {
        "postgres": _pg_version,
        "redis": _redis_version,
        "rabbitmq": _rabbitmq_version,
        "nats": nats_version,
    }
    for name, probe in probes.items():
        label = SERVICES[name].label
        try:
            found.append(f"{label} {probe(service_url(name))}")
        except Exception:
            found.append(f"{label} not reachable")
    return found


def _pg_version(url: str) -> str:
    import psycopg

    with psycopg.connect(url, connect_timeout=2) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]).split()[0] if row else "?"


def _redis_version(url: str) -> str:
    import redis as redis_py

    client = redis_py.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        return str(client.info("server")["redis_version"])
    finally:
        client.close()


def _rabbitmq_version(url: str) -> str:
    import pika

    parameters = pika.URLParameters(url)
    parameters.socket_timeout = 2
    parameters.blocked_connection_timeout = 2
    connection = pika.BlockingConnection(parameters)
    try:
        version = connection._impl.server_properties.get("version", b"?")
        return version.decode() if isinstance(version, bytes) else str(version)
    finally:
        connection.close()


async def _nats_version(url: str) -> str:
    import nats as nats_py

    nc = await nats_py.connect(url, connect_timeout=2, max_reconnect_attempts=0)
    try:
        return str(nc._server_info.get("version", "?"))
    finally:
        await nc.close()


def pytest_report_header(config: pytest.Config) -> list[str]:
    return ["services: " + ", ".join(_service_versions())]
