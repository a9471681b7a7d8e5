"""Transactional outbox: the event commits with the change, a relay publishes it.

Writing to the database and then publishing to a broker is two writes with no
transaction around them: a crash between them loses the event (commit, then
publish) or announces a change that never committed (publish, then commit). The
outbox writes the event as a row in the same transaction as the change. A relay
claims pending rows with ``FOR UPDATE SKIP LOCKED``, publishes them with publisher
confirms, and marks them published in the claiming transaction, so two relays can
run at once. Delivery is at-least-once: a relay that dies after the broker's
confirm and before its commit publishes the event again.

Run against PostgreSQL with psycopg 3 and RabbitMQ with pika.
"""

from snippets.message_queues.transactional_outbox.outbox import (
    SCHEMA,
    Conn,
    Event,
    add_to_outbox,
    create_schema,
    insert_order,
    place_order,
)
from snippets.message_queues.transactional_outbox.publisher import (
    BrokerUnavailable,
    IdlePublisher,
    Publisher,
    PublishError,
    RabbitPublisher,
)
from snippets.message_queues.transactional_outbox.relay import (
    CLAIM_IN_ORDER,
    CLAIM_SKIP_LOCKED,
    CLAIM_UNLOCKED,
    CLAIMABLE,
    PARKED,
    parked_events,
    relay_once,
    release_parked,
    run_relay,
)

__all__ = [
    "CLAIMABLE",
    "CLAIM_IN_ORDER",
    "CLAIM_SKIP_LOCKED",
    "CLAIM_UNLOCKED",
    "PARKED",
    "SCHEMA",
    "BrokerUnavailable",
    "Conn",
    "Event",
    "IdlePublisher",
    "PublishError",
    "Publisher",
    "RabbitPublisher",
    "add_to_outbox",
    "create_schema",
    "insert_order",
    "parked_events",
    "place_order",
    "relay_once",
    "release_parked",
    "run_relay",
]
