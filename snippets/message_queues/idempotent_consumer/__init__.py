"""Idempotent consumer: record the message id in the same transaction as the effect.

A broker with at-least-once delivery hands the same message to a consumer more than
once: after a crash between commit and ack, after a lost ack, or to two consumers at
the same moment. The consumer inserts the message id into an inbox table with
``ON CONFLICT DO NOTHING`` inside the transaction that applies the effect, so the
database's unique index decides which delivery wins and the effect happens once.

Run against PostgreSQL with psycopg 3 and RabbitMQ with pika.
"""

from snippets.message_queues.idempotent_consumer.consumer import consume
from snippets.message_queues.idempotent_consumer.inbox import (
    PURGE,
    SCHEMA,
    Conn,
    Credit,
    Handler,
    apply_credit,
    create_schema,
    credit_once,
    purge_inbox,
)

__all__ = [
    "PURGE",
    "SCHEMA",
    "Conn",
    "Credit",
    "Handler",
    "apply_credit",
    "consume",
    "create_schema",
    "credit_once",
    "purge_inbox",
]
