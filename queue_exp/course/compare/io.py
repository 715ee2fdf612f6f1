"""The small write/read primitives every comparison uses: numbered messages,
a confirmed publish, and a bounded read of a queue or a stream. (Producing to
Kafka is :func:`queue_exp.course.kafka.log.produce`; names and clean-up are the
:class:`~queue_exp.course.run.Run`'s.)"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from pika.exceptions import ConnectionClosedByBroker

from queue_exp.clients import rabbitmq
from queue_exp.config import Settings
from queue_exp.messages import Message
from queue_exp.messages import decode_lenient

log = logging.getLogger(__name__)

NOT_IMPLEMENTED = 540  # AMQP reply code, e.g. a nack sent to a stream


def numbered(count: int, source: str = "notebook") -> list[Message]:
    """``#1``, ``#2``, ... ``#count``: the messages most experiments send."""
    return [Message.now(f"#{i}", source=source) for i in range(1, count + 1)]


def number_of(text: str) -> int:
    """``'#17'`` -> 17 (for messages made by :func:`numbered`)."""
    return int(text.removeprefix("#"))


def numbers_in(texts: Sequence[Any]) -> list[int]:
    """``["#3", "hello", "#4"]`` -> ``[3, 4]``: the numbered messages among whatever
    else a topic or queue holds."""
    return [number_of(t) for t in texts
            if isinstance(t, str) and t.startswith("#") and t[1:].isdigit()]


def publish(settings: Settings, messages: Sequence[Message], *, queue: str = "",
            exchange: str = "") -> int:
    """Publish ``messages`` to a queue (default exchange) or to an exchange, each
    confirmed by the broker; the message text doubles as the AMQP message id."""
    with rabbitmq.open_channel(settings) as channel:
        for message in messages:
            rabbitmq.publish(channel, message, queue, exchange, persistent=False,
                             message_id=message.message)
    return len(messages)


def read_queue(
    settings: Settings,
    queue_name: str,
    *,
    offset: Any = None,
    max_messages: int = 10_000,
    idle_s: float = 1.0,
    timeout_s: float = 15.0,
) -> list[dict[str, Any]]:
    """Consume (and ack) from a queue until ``max_messages`` arrived or nothing
    came for ``idle_s`` (AMQP has no "end of queue"), at most ``timeout_s``.

    ``offset`` is for streams: the ``x-stream-offset`` consumer argument
    (``"first"``, ``"last"``, ``"next"``, a number); ``None`` sends none (a
    stream then starts at ``"next"``)."""
    arguments = None if offset is None else {"x-stream-offset": offset}
    connection = rabbitmq.connect(settings)
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    try:
        channel = connection.channel()
        # a stream refuses consumers without a prefetch limit; acks move the window
        channel.basic_qos(prefetch_count=100)
        for method, props, body in channel.consume(
            queue_name, arguments=arguments, inactivity_timeout=idle_s
        ):
            if method is None:
                break  # idle: nothing more to read
            item = decode_lenient(body)
            item.update(redelivered=bool(method.redelivered),
                        stream_offset=(props.headers or {}).get("x-stream-offset"))
            out.append(item)
            channel.basic_ack(method.delivery_tag)
            if len(out) >= max_messages or time.monotonic() >= deadline:
                break
        try:
            channel.cancel()  # pika nacks (requeues) what it received but did not hand us
        except ConnectionClosedByBroker as exc:
            # a stream does not take nacks: RabbitMQ closes the connection
            # (540). What we read is complete; nothing was lost.
            if offset is None or exc.reply_code != NOT_IMPLEMENTED:
                raise
    finally:
        if connection.is_open:
            connection.close()
    return out
