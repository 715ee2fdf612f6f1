"""RabbitMQ clients on pika: connect, declare, bind, publish with confirms, a
bounded read, a ping.

AMQP vocabulary (exchange, routing key, queue, ack) stays in this module and
:mod:`~queue_exp.clients.rabbitmq_management`. A pika ``BlockingConnection``
belongs to the thread that opened it: every helper here opens its own, uses it
in the calling thread and closes it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pika
from pika.adapters.blocking_connection import BlockingChannel
from pika.adapters.utils.connection_workflow import AMQPConnectorException
from pika.exceptions import AMQPConnectionError
from pika.exceptions import ChannelClosedByBroker

from queue_exp.config import Settings
from queue_exp.config import get_settings
from queue_exp.errors import BrokerUnavailable
from queue_exp.errors import ping_result
from queue_exp.messages import Message
from queue_exp.messages import decode_lenient
from queue_exp.messages import encode

log = logging.getLogger(__name__)

BROKER = "RabbitMQ"
PERSISTENT = pika.DeliveryMode.Persistent
NOT_FOUND = 404  # AMQP reply code when a channel names an exchange or queue that does not exist


class ExchangeNotFound(LookupError):
    """A publish named an exchange the broker does not have (it closed the channel)."""

    def __init__(self, exchange: str) -> None:
        self.exchange = exchange
        super().__init__(f"RabbitMQ has no exchange named {exchange!r}; declare it first")


def connection_parameters(settings: Settings, url: str | None = None) -> pika.URLParameters:
    """pika's parameters for the broker (or the node ``url``), bounded by the
    broker timeout."""
    params = pika.URLParameters(url or settings.rabbitmq_url)
    timeout = settings.broker_timeout_s
    params.connection_attempts = 1
    params.socket_timeout = timeout
    params.stack_timeout = timeout
    params.blocked_connection_timeout = timeout
    params.heartbeat = 30
    params.client_properties = {"connection_name": settings.name("queue_exp")}
    return params


def cluster_parameters(settings: Settings) -> list[pika.URLParameters]:
    """One set of parameters per node of a cluster (``RABBITMQ_URLS``), in the order
    to try them; a single broker gives a list of one."""
    return [connection_parameters(settings, url) for url in settings.rabbitmq_url_list]


def connect(settings: Settings | None = None) -> pika.BlockingConnection:
    """Open a connection (bounded by the broker timeout), to the first node that
    answers when several are configured. Raises ``BrokerUnavailable``."""
    settings = settings or get_settings()
    nodes = cluster_parameters(settings)
    try:
        return pika.BlockingConnection(nodes if len(nodes) > 1 else nodes[0])
    # pika raises a handshake timeout (a peer that accepts TCP but never speaks
    # AMQP) as AMQPConnectorException, outside its AMQPConnectionError family
    except (AMQPConnectionError, AMQPConnectorException) as exc:
        raise BrokerUnavailable(
            BROKER, settings.rabbitmq_url_redacted, type(exc).__name__
        ) from exc


@contextmanager
def open_channel(
    settings: Settings | None = None, confirm: bool = True
) -> Iterator[BlockingChannel]:
    """A channel on a connection of its own, closed afterwards. With ``confirm``,
    each publish returns only once the broker has confirmed it."""
    connection = connect(settings)
    try:
        channel = connection.channel()
        if confirm:
            channel.confirm_delivery()
        yield channel
    finally:
        if connection.is_open:
            connection.close()


def declare_queue(channel: BlockingChannel, name: str, durable: bool = True, **arguments: Any):
    """Declare (idempotently) a queue; durable queues survive a broker restart."""
    return channel.queue_declare(queue=name, durable=durable, arguments=arguments or None)


def declare_exchange(
    channel: BlockingChannel, name: str, exchange_type: str = "direct", durable: bool = False
):
    """Declare (idempotently) an exchange: ``direct``, ``fanout``, ``topic`` or ``headers``."""
    return channel.exchange_declare(exchange=name, exchange_type=exchange_type, durable=durable)


def bind_queue(
    channel: BlockingChannel,
    queue_name: str,
    exchange: str,
    binding_key: str = "",
    arguments: dict[str, Any] | None = None,
):
    """Ask ``exchange`` to copy matching messages into ``queue_name``. What "matching"
    means depends on the exchange type (``arguments`` are for headers exchanges)."""
    return channel.queue_bind(
        queue=queue_name, exchange=exchange, routing_key=binding_key, arguments=arguments
    )


def _passive_declare(declare: str, name: str, settings: Settings | None) -> Any | None:
    """The broker's answer to a passive ``queue_declare``/``exchange_declare``, or
    ``None`` if there is no such queue or exchange. On a connection of its own,
    because a 404 closes the channel."""
    try:
        with open_channel(settings, confirm=False) as channel:
            return getattr(channel, declare)(name, passive=True)
    except ChannelClosedByBroker as exc:
        if exc.reply_code == NOT_FOUND:
            return None
        raise


def ready_count(queue_name: str, settings: Settings | None = None) -> int | None:
    """Messages ready in a queue (not counting deliveries a consumer holds), or
    ``None`` if there is no such queue."""
    frame = _passive_declare("queue_declare", queue_name, settings)
    return None if frame is None else frame.method.message_count


def queue_exists(name: str, settings: Settings | None = None) -> bool:
    """Does the broker have a queue of this name?"""
    return _passive_declare("queue_declare", name, settings) is not None


def exchange_exists(name: str, settings: Settings | None = None) -> bool:
    """Does the broker have an exchange of this name?"""
    return _passive_declare("exchange_declare", name, settings) is not None


def publish(
    channel: BlockingChannel,
    message: Message,
    routing_key: str,
    exchange: str = "",
    persistent: bool = True,
    mandatory: bool = False,
    headers: dict[str, Any] | None = None,
    expiration_ms: int | None = None,
    **properties: Any,
) -> None:
    """Publish one message. On a channel in confirm mode this returns only once the
    broker has taken responsibility for it, and raises if the broker refused it
    (``NackError``) or, with ``mandatory``, could not route it (``UnroutableError``).

    ``headers`` travel with the message (a headers exchange routes on them);
    ``expiration_ms`` is a per-message time-to-live; other ``properties`` (e.g.
    ``reply_to``, ``correlation_id``) go into its ``BasicProperties``."""
    channel.basic_publish(
        exchange=exchange,
        routing_key=routing_key,
        body=encode(message),
        properties=pika.BasicProperties(
            content_type="application/json",
            delivery_mode=PERSISTENT if persistent else pika.DeliveryMode.Transient,
            headers=headers,
            expiration=None if expiration_ms is None else str(int(expiration_ms)),
            **properties,
        ),
        mandatory=mandatory,
    )


def delete_queues(names: list[str], settings: Settings | None = None) -> None:
    """Delete queues (and the messages in them); unknown names are ignored."""
    _delete("queue_delete", names, settings)


def delete_exchanges(names: list[str], settings: Settings | None = None) -> None:
    """Delete exchanges (and their bindings); unknown names are ignored."""
    _delete("exchange_delete", names, settings)


def _delete(method: str, names: list[str], settings: Settings | None) -> None:
    if not names:
        return
    with open_channel(settings, confirm=False) as channel:
        for name in names:
            getattr(channel, method)(name)


def delivery_to_dict(method: Any, body: bytes, queue_name: str) -> dict[str, Any]:
    """A delivery as the API and the notebooks show it: the message plus how it
    got here (exchange, routing key, queue) and whether it is a redelivery."""
    item = decode_lenient(body)
    item.update(
        exchange=method.exchange,
        routing_key=method.routing_key,
        queue=queue_name,
        redelivered=bool(method.redelivered),
    )
    return item


def consume(
    queue_name: str,
    *,
    max_messages: int = 100,
    timeout_s: float = 5.0,
    settings: Settings | None = None,
) -> list[dict[str, Any]]:
    """Take up to ``max_messages`` from a queue, waiting at most ``timeout_s``;
    each is acked after it is read, so the queue forgets it."""
    out: list[dict[str, Any]] = []
    with open_channel(settings, confirm=False) as channel:
        deadline = time.monotonic() + timeout_s
        channel.basic_qos(prefetch_count=max(1, min(max_messages, 100)))
        for method, _props, body in channel.consume(queue_name, inactivity_timeout=0.2):
            if method is not None:
                out.append(delivery_to_dict(method, body, queue_name))
                channel.basic_ack(method.delivery_tag)
            if len(out) >= max_messages or time.monotonic() >= deadline:
                break
        channel.cancel()  # unacked prefetched messages go back to the queue
    return out


def ping(settings: Settings | None = None) -> dict[str, Any]:
    """Is RabbitMQ reachable? ``{"reachable", "address", "version", "management_url"}``
    (or ``"error"``); never raises."""
    settings = settings or get_settings()

    def probe() -> dict[str, Any]:
        connection = connect(settings)
        try:
            version = connection._impl.server_properties.get("version", b"")
        finally:
            connection.close()
        return {"version": version.decode() if isinstance(version, bytes) else str(version),
                "management_url": settings.rabbitmq_management_url}

    return ping_result(settings.rabbitmq_url_redacted, probe)
