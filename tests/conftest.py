"""Fixtures shared by every test: one per real service, and the output check.

Each service fixture connects once per session, hands each test its own names
(queues, streams, keys, schemas) and removes them afterwards. When a service is
not reachable the test is skipped with a reason that says how to start it;
under ``CI=true`` it fails instead, because CI never skips.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import pytest

ROOT = Path(__file__).resolve().parent.parent
CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


# --------------------------------------------------------------------------- #
# Reaching a service
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Service:
    """A service on loopback, and the command that starts it on this machine."""

    label: str
    env: str
    default_url: str
    port: int
    start: str


SERVICES = {
    "postgres": Service(
        "PostgreSQL",
        "CP_POSTGRES_URL",
        "postgresql://postgres@127.0.0.1:5432/test",
        5432,
        "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    ),
    "redis": Service(
        "Redis",
        "CP_REDIS_URL",
        "redis://127.0.0.1:6379/0",
        6379,
        'redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save ""',
    ),
    "rabbitmq": Service(
        "RabbitMQ",
        "CP_RABBITMQ_URL",
        "amqp://guest:guest@127.0.0.1:5672/%2F",
        5672,
        "rabbitmq-server -detached",
    ),
    "nats": Service(
        "NATS JetStream",
        "CP_NATS_URL",
        "nats://127.0.0.1:4222",
        4222,
        "nats-server -a 127.0.0.1 -p 4222 -js",
    ),
}


def service_url(name: str) -> str:
    """The URL tests use for a service: ``$CP_<NAME>_URL`` or the loopback default."""
    service = SERVICES[name]
    return os.environ.get(service.env, service.default_url)


def unavailable(what: str, how_to_fix: str) -> None:
    """Skip locally, fail under CI: nothing is silently skipped in CI."""
    message = f"{what} is not available; {how_to_fix}"
    if CI:
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(message)


def require_service(name: str) -> str:
    """Return the service's URL, or skip/fail with how to start it."""
    service = SERVICES[name]
    url = service_url(name)
    host = url.split("@")[-1].split("//")[-1].split("/")[0].rsplit(":", 1)[0]
    try:
        with socket.create_connection((host, service.port), timeout=2):
            pass
    except OSError as error:
        unavailable(
            f"{service.label} at {host}:{service.port} ({error.strerror or error})",
            f"start it with `{service.start}` or set {service.env}",
        )
    return url


def unique(prefix: str) -> str:
    """A name no other test (or earlier run) uses."""
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


# --------------------------------------------------------------------------- #
# One fixture per service
# --------------------------------------------------------------------------- #


@dataclass
class Postgres:
    """A schema of the test's own. ``dsn`` connects with it first on the search path."""

    url: str
    schema: str

    @property
    def dsn(self) -> str:
        return f"{self.url}?options=-csearch_path%3D{self.schema}"


@pytest.fixture
def postgres() -> Iterator[Postgres]:
    import psycopg

    url = require_service("postgres")
    target = Postgres(url=url, schema=unique("t"))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {target.schema}")
    try:
        yield target
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {target.schema} CASCADE")


@dataclass
class Redis:
    """A key prefix of the test's own; every key made with ``key()`` is deleted."""

    url: str
    prefix: str
    made: list[str] = field(default_factory=list)

    def key(self, base: str) -> str:
        key = f"{self.prefix}:{base}"
        self.made.append(key)
        return key


@pytest.fixture
def redis() -> Iterator[Redis]:
    import redis as redis_py

    url = require_service("redis")
    target = Redis(url=url, prefix=unique("t"))
    try:
        yield target
    finally:
        client = redis_py.Redis.from_url(url)
        keys = list(client.scan_iter(match=f"{target.prefix}:*"))
        if keys:
            client.delete(*keys)
        client.close()


@dataclass
class RabbitMQ:
    """Queue and exchange names of the test's own; all are deleted afterwards."""

    url: str
    prefix: str
    made: list[str] = field(default_factory=list)

    def name(self, base: str) -> str:
        name = f"{self.prefix}.{base}"
        self.made.append(name)
        return name


@pytest.fixture
def rabbitmq() -> Iterator[RabbitMQ]:
    import pika

    url = require_service("rabbitmq")
    target = RabbitMQ(url=url, prefix=unique("t"))
    try:
        yield target
    finally:
        connection = pika.BlockingConnection(pika.URLParameters(url))
        for name in target.made:
            channel = connection.channel()
            channel.queue_delete(name)
            channel.exchange_delete(name)
            channel.close()
        connection.close()


@dataclass
class Nats:
    """JetStream stream names of the test's own; all are deleted afterwards."""

    url: str
    prefix: str
    made: list[str] = field(default_factory=list)

    def name(self, base: str) -> str:
        name = f"{self.prefix}_{base}".upper()
        self.made.append(name)
        return name


async def _delete_streams(url: str, names: list[str]) -> None:
    import nats
    from nats.js.errors import NotFoundError

    nc = await nats.connect(url, connect_timeout=2, max_reconnect_attempts=0)
    try:
        js = nc.jetstream()
        for name in names:
            try:
                await js.delete_stream(name)
            except NotFoundError:
                pass
    finally:
        await nc.close()


@pytest.fixture
def nats() -> Iterator[Nats]:
    url = require_service("nats")
    target = Nats(url=url, prefix=unique("t"))
    try:
        yield target
    finally:
        if target.made:
            asyncio.run(_delete_streams(url, target.made))


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
