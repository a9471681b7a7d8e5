"""Publishing to RabbitMQ with publisher confirms and ``mandatory``."""

from __future__ import annotations

import json
import logging
from types import TracebackType
from typing import Any, Protocol

import pika
from pika.exceptions import AMQPError, NackError, UnroutableError

from snippets.message_queues.transactional_outbox.outbox import Event

__all__ = [
    "BrokerUnavailable",
    "IdlePublisher",
    "PublishError",
    "Publisher",
    "RabbitPublisher",
]

log = logging.getLogger(__name__)


class PublishError(Exception):
    """The broker did not take the event; it stays pending in the outbox."""


class BrokerUnavailable(PublishError):
    """No connection to the broker: no event can be published just now."""


class Publisher(Protocol):
    """Anything that publishes one event and returns only once the broker has it."""

    def publish(self, event: Event) -> None:
        """Publish ``event`` or raise ``PublishError``."""


class IdlePublisher(Publisher, Protocol):
    """A publisher whose connection needs servicing while the relay waits."""

    def keep_alive(self) -> None:
        """Answer heartbeats; called at least every half second while idle."""


# --8<-- [start:publisher]
class RabbitPublisher:
    """Publish events to a RabbitMQ exchange and wait for each confirm.

    ``mandatory`` makes the broker return an event that no queue is bound for;
    without it the broker confirms the event and drops it, and the relay would
    mark it published. Connects on first use and again after a failure. The wait
    for a confirm ends when it arrives or the connection fails: heartbeats,
    ``timeout`` on the socket and on a broker that blocks publishers.
    """

    def __init__(
        self, url: str, exchange: str, *, timeout: float = 10.0, mandatory: bool = True
    ) -> None:
        self._params = pika.URLParameters(url)
        self._params.socket_timeout = timeout
        self._params.blocked_connection_timeout = timeout
        self._exchange, self._mandatory = exchange, mandatory
        self._connection: Any = None
        self._channel: Any = None

    def publish(self, event: Event) -> None:
        """Publish ``event``; return once the broker confirmed it."""
        properties = pika.BasicProperties(
            message_id=event.event_id,
            type=event.event_type,
            content_type="application/json",
            delivery_mode=pika.DeliveryMode.Persistent,
            headers={"aggregate_id": event.aggregate_id},
        )
        body = json.dumps(event.payload).encode()
        try:
            if self._channel is None:
                self._connection = pika.BlockingConnection(self._params)
                self._channel = self._connection.channel()
                self._channel.confirm_delivery()
            self._channel.basic_publish(
                self._exchange, event.event_type, body, properties, self._mandatory
            )
        except (UnroutableError, NackError) as error:  # the channel stays usable
            raise PublishError(f"{event.event_id}: {error!r}") from error
        except AMQPError as error:  # no connection, or it broke: start over
            self.close()
            raise BrokerUnavailable(f"{event.event_id}: {error!r}") from error

    def keep_alive(self) -> None:
        """Send and answer heartbeats on an idle connection.

        pika's ``BlockingConnection`` only does so inside its own calls; a
        connection nobody calls misses heartbeats and the broker closes it.
        """
        if self._connection is None:
            return
        try:
            self._connection.process_data_events(time_limit=0)
        except AMQPError:
            log.warning("the broker connection broke while idle", exc_info=True)
            self.close()  # the next publish reconnects

    # --8<-- [end:publisher]

    def close(self) -> None:
        """Close the connection; the next ``publish`` opens a new one."""
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and connection.is_open:
            try:
                connection.close()
            except AMQPError:
                log.warning("closing the broker connection failed", exc_info=True)

    def __enter__(self) -> RabbitPublisher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
