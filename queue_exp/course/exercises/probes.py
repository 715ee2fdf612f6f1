"""Small, bounded looks at the brokers that the checks share, and one way to
read whatever shape a learner's answer has (a list of texts, of dicts, of
records) as a list of message texts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from queue_exp.clients import kafka_admin
from queue_exp.clients import rabbitmq
from queue_exp.clients.rabbitmq import open_channel  # re-exported for the checks
from queue_exp.config import Settings
from queue_exp.course.kafka import log as kafka_log
from queue_exp.messages import Message
from queue_exp.messages import decode_lenient

# ----------------------------------------------------------------- answers


def text_of(item: Any) -> str | None:
    """The message text of one item of a learner's answer, whatever it is: a text,
    a dict as the course's helpers return them, a Kafka record, a Message, raw
    bytes, or a ``basic_get`` tuple. ``None`` if it is none of those."""
    if isinstance(item, str):
        return item
    if isinstance(item, Message):
        return item.message
    if isinstance(item, dict):
        return item.get("message") if isinstance(item.get("message"), str) else None
    if isinstance(item, bytes | bytearray):
        return text_of(decode_lenient(bytes(item)))
    if isinstance(item, tuple) and len(item) == 3 and isinstance(item[2], bytes | bytearray):
        return text_of(item[2])  # (method, properties, body) from basic_get
    value = getattr(item, "value", None)  # a kafka-python ConsumerRecord
    return text_of(value) if isinstance(value, bytes | bytearray) else None


def texts_of(answer: Any) -> list[str] | None:
    """A learner's list of messages as a list of texts; ``None`` if it is not a
    list (or tuple) of things that have a text."""
    if not isinstance(answer, list | tuple):
        return None
    texts = [text_of(item) for item in answer]
    return None if any(t is None for t in texts) else texts  # type: ignore[return-value]


# ------------------------------------------------------------------- Kafka


def read_topic(topic: str, settings: Settings) -> list[dict[str, Any]]:
    """Every record on ``topic`` now (with ``key`` and ``timestamp_ms``), sorted by
    partition and offset; empty if there is no such topic. Never creates it: a
    consumer that subscribes to a missing topic would have the broker create it
    with one partition."""
    if not kafka_admin.partitions_of(topic, settings):
        return []
    return kafka_log.read_to_end(topic, timeout_s=10, settings=settings)


# ---------------------------------------------------------------- RabbitMQ


ready_count = rabbitmq.ready_count


def publish_texts(settings: Settings, routing_keys: Sequence[str], texts: Sequence[str],
                  exchange: str = "", source: str = "exercise") -> None:
    """Publish ``texts[i]`` with ``routing_keys[i]`` (confirmed, so each one is
    routed to its queues by the time this returns)."""
    with open_channel(settings) as channel:
        for key, text in zip(routing_keys, texts, strict=True):
            rabbitmq.publish(channel, Message.now(text, source=source), key, exchange,
                                  persistent=False)


def drain(queue: str, settings: Settings, limit: int = 1000) -> list[dict[str, Any]]:
    """Take (and ack) every message ready in ``queue`` now, oldest first."""
    out = []
    with open_channel(settings, confirm=False) as channel:
        for _ in range(limit):
            method, _props, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                break
            out.append(rabbitmq.delivery_to_dict(method, body, queue))
    return out


def purge(queues: Sequence[str], settings: Settings) -> None:
    with open_channel(settings, confirm=False) as channel:
        for queue in queues:
            channel.queue_purge(queue)
