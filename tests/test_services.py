"""Smoke tests: each service fixture reaches its real service and cleans up."""

from __future__ import annotations

import asyncio

import pika
import psycopg
import redis as redis_py

from tests.conftest import Nats, Postgres, RabbitMQ, Redis


def test_postgres_gives_each_test_its_own_schema(postgres: Postgres) -> None:
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE probe (n int)")
        conn.execute("INSERT INTO probe VALUES (1)")
        row = conn.execute("SELECT current_schema(), count(*) FROM probe").fetchone()
    assert row == (postgres.schema, 1)


def test_redis_keys_carry_the_test_prefix(redis: Redis) -> None:
    client = redis_py.Redis.from_url(redis.url, decode_responses=True)
    key = redis.key("probe")
    client.set(key, "1")
    assert key.startswith(redis.prefix + ":")
    assert client.get(key) == "1"
    client.close()


def test_rabbitmq_round_trips_a_message(rabbitmq: RabbitMQ) -> None:
    queue = rabbitmq.name("probe")
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq.url))
    channel = connection.channel()
    channel.queue_declare(queue)
    channel.basic_publish("", queue, b"hello")
    method, _, body = channel.basic_get(queue, auto_ack=True)
    connection.close()
    assert method is not None
    assert body == b"hello"


def test_nats_jetstream_stores_and_returns_a_message(nats: Nats) -> None:
    import nats as nats_py

    stream = nats.name("probe")

    async def round_trip() -> bytes:
        nc = await nats_py.connect(nats.url)
        js = nc.jetstream()
        await js.add_stream(name=stream, subjects=[f"{stream}.>"])
        await js.publish(f"{stream}.hello", b"hello")
        message = await js.get_last_msg(stream, f"{stream}.hello")
        await nc.close()
        return message.data or b""

    assert asyncio.run(round_trip()) == b"hello"
