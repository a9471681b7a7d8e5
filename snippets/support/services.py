"""The real services the demos and tests talk to, each under a name of its own.

Every service is reached on loopback unless ``CP_<NAME>_URL`` points elsewhere.
``require(name)`` returns the URL or raises :class:`ServiceUnavailable` with the
command that starts the service; the context managers hand out names (a
PostgreSQL schema, queue names, a Redis key prefix, stream names) that nothing
else uses, and remove them afterwards.
"""

from __future__ import annotations

import asyncio
import os
import socket
import urllib.parse
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

__all__ = [
    "SERVICES",
    "Nats",
    "Postgres",
    "RabbitMQ",
    "Redis",
    "Service",
    "ServiceUnavailable",
    "nats",
    "postgres",
    "rabbitmq",
    "reachable",
    "redis",
    "require",
    "service_url",
    "unique",
]


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


class ServiceUnavailable(RuntimeError):
    """A service the code needs is not reachable; the message says how to start it."""


def service_url(name: str) -> str:
    """``$CP_<NAME>_URL`` or the loopback default."""
    service = SERVICES[name]
    return os.environ.get(service.env, service.default_url)


def require(name: str) -> str:
    """The service's URL, once a TCP connection to it succeeds."""
    return reachable(name, service_url(name))


def reachable(name: str, url: str) -> str:
    """``url`` (of service ``name``), once a TCP connection to it succeeds."""
    service = SERVICES[name]
    split = urllib.parse.urlsplit(url)
    host, port = split.hostname or "127.0.0.1", split.port or service.port
    try:
        with socket.create_connection((host, port), timeout=2):
            pass
    except OSError as error:
        raise ServiceUnavailable(
            f"{service.label} at {host}:{port} is not available "
            f"({error.strerror or error}); start it with `{service.start}` "
            f"or set {service.env}"
        ) from None
    return url


def unique(prefix: str) -> str:
    """A name no other run uses."""
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@dataclass
class Postgres:
    """A schema of one's own. ``dsn`` connects with it first on the search path."""

    url: str
    schema: str

    @property
    def dsn(self) -> str:
        return f"{self.url}?options=-csearch_path%3D{self.schema}"


@contextmanager
def postgres() -> Iterator[Postgres]:
    import psycopg

    url = require("postgres")
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
    """A key prefix of one's own; every key made with ``key()`` is deleted."""

    url: str
    prefix: str
    made: list[str] = field(default_factory=list)

    def key(self, base: str) -> str:
        key = f"{self.prefix}:{base}"
        self.made.append(key)
        return key


@contextmanager
def redis() -> Iterator[Redis]:
    import redis as redis_py

    url = require("redis")
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
    """Queue and exchange names of one's own; all are deleted afterwards."""

    url: str
    prefix: str
    made: list[str] = field(default_factory=list)

    def name(self, base: str) -> str:
        name = f"{self.prefix}.{base}"
        self.made.append(name)
        return name


@contextmanager
def rabbitmq() -> Iterator[RabbitMQ]:
    import pika

    url = require("rabbitmq")
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
    """JetStream stream names of one's own; all are deleted afterwards."""

    url: str
    prefix: str
    made: list[str] = field(default_factory=list)

    def name(self, base: str) -> str:
        name = f"{self.prefix}_{base}".upper()
        self.made.append(name)
        return name


async def _delete_streams(url: str, names: list[str]) -> None:
    import nats as nats_py
    from nats.js.errors import NotFoundError

    nc = await nats_py.connect(url, connect_timeout=2, max_reconnect_attempts=0)
    try:
        js = nc.jetstream()
        for name in names:
            try:
                await js.delete_stream(name)
            except NotFoundError:
                pass
    finally:
        await nc.close()


@contextmanager
def nats(url: str | None = None) -> Iterator[Nats]:
    """Stream names of one's own on ``url`` (default: ``service_url("nats")``)."""
    url = require("nats") if url is None else reachable("nats", url)
    target = Nats(url=url, prefix=unique("t"))
    try:
        yield target
    finally:
        if target.made:
            asyncio.run(_delete_streams(url, target.made))
