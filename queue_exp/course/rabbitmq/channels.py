"""What every RabbitMQ experiment stands on: short-lived channels to declare,
bind, publish, count and drain with (names come from a
:class:`~queue_exp.course.run.Run`, which deletes everything at the end)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pika.adapters.blocking_connection import BlockingChannel

from queue_exp.clients import rabbitmq
from queue_exp.clients.rabbitmq import open_channel  # re-exported: the lessons' channels
from queue_exp.config import Settings
from queue_exp.course.run import Run
from queue_exp.messages import Message


def publish(
    routing_key: str,
    texts: Sequence[str],
    *,
    exchange: str = "",
    persistent: bool = False,
    settings: Settings | None = None,
    source: str = "notebook",
    **options: Any,
) -> int:
    """Publish one message per text (confirmed); returns how many."""
    with open_channel(settings) as channel:
        for text in texts:
            rabbitmq.publish(
                channel, Message.now(text, source=source), routing_key, exchange,
                persistent=persistent, **options,
            )
    return len(texts)


message_count = rabbitmq.ready_count


def drain(channel: BlockingChannel, queue_name: str, limit: int = 1000) -> list[dict[str, Any]]:
    """Take (and ack) everything ready in a queue right now, with ``basic_get``."""
    out = []
    for _ in range(limit):
        method, props, body = channel.basic_get(queue_name, auto_ack=True)
        if method is None:
            break
        item = rabbitmq.delivery_to_dict(method, body, queue_name)
        item["headers"] = dict(props.headers or {})
        out.append(item)
    return out


def declared_queue(queue_name: str, settings: Settings | None = None, **arguments: Any) -> str:
    """Declare a durable queue (``arguments``: its ``x-...`` options) on a channel of
    its own; returns its name. Durable: RabbitMQ 4 deprecates transient queues
    that are not exclusive, and some brokers already refuse them."""
    with open_channel(settings, confirm=False) as channel:
        rabbitmq.declare_queue(channel, queue_name, **arguments)
    return queue_name


def bound_exchange(
    run: Run, label: str, exchange_type: str, queue_name: str, binding_key: str = ""
) -> str:
    """Declare this run's exchange ``label`` and bind an existing queue to it; returns
    the exchange's name."""
    return run.exchange(label, exchange_type, bind={queue_name: binding_key})
