"""Names for one run of the comparison (fresh topics, groups, queues, exchanges),
the small write/read primitives every experiment uses, and the cleanup."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

from pika.exceptions import ConnectionClosedByBroker

from queue_exp import kafka_client, rabbit_client, teaching
from queue_exp.config import Settings, get_settings
from queue_exp.messages import Message, decode_lenient, encode

log = logging.getLogger(__name__)

NOT_IMPLEMENTED = 540  # AMQP reply code, e.g. a nack sent to a stream


def numbered(count: int, source: str = "notebook") -> list[Message]:
    """``#1``, ``#2``, ... ``#count``: the messages most experiments send."""
    return [Message.now(f"#{i}", source=source) for i in range(1, count + 1)]


def number_of(text: str) -> int:
    """``'#17'`` -> 17 (for messages made by :func:`numbered`)."""
    return int(text.removeprefix("#"))


class Run:
    """Fresh names for one run (``<lesson>.run-xxxxxx.<label>``, inside
    ``QUEUE_EXP_NAMESPACE`` if set) and a list of what was created, for
    :meth:`clean_up`. Both brokers see the same labels."""

    def __init__(self, lesson: str = "compare", settings: Settings | None = None) -> None:
        self.namespace = teaching.fresh_namespace(lesson)
        self.settings = replace(settings or get_settings(), namespace=self.namespace)
        self.topics: list[str] = []
        self.groups: list[str] = []
        self.queues: list[str] = []
        self.exchanges: list[str] = []

    def _remember(self, name: str, into: list[str]) -> str:
        if name not in into:
            into.append(name)
        return name

    def label(self, name: str) -> str:
        """``<namespace>.orders`` -> ``orders``: what a table shows, the same every run."""
        return name.removeprefix(self.namespace + ".")

    # ------------------------------------------------------------------ Kafka

    def topic(self, label: str, partitions: int = 3) -> str:
        """Create the topic ``label`` (replication factor 1); returns its full name."""
        name = self._remember(self.settings.name(label), self.topics)
        kafka_client.create_topic(name, partitions, settings=self.settings)
        return name

    def group(self, label: str) -> str:
        return self._remember(self.settings.name(label), self.groups)

    def produce(
        self, topic: str, messages: Sequence[Message], *, spread: bool = False,
        timeout_s: float = 15.0,
    ) -> list[dict[str, Any]]:
        """Send ``messages`` in order, wait for every acknowledgement; where each
        landed. ``spread=True`` puts message *i* on partition *i* mod *n* (an even
        split); otherwise the key picks the partition, as usual."""
        partitions = kafka_client.partitions_of(topic, self.settings) if spread else []
        producer = kafka_client.make_producer(self.settings)
        try:
            futures = []
            for i, message in enumerate(messages):
                key = message.key.encode() if message.key is not None else None
                partition = partitions[i % len(partitions)] if spread else None
                futures.append(producer.send(topic, value=encode(message), key=key,
                                             partition=partition))
            metas = [future.get(timeout=timeout_s) for future in futures]
        finally:
            producer.close(timeout=5)
        return [{"message": m.message, "partition": meta.partition, "offset": meta.offset}
                for m, meta in zip(messages, metas, strict=True)]

    # --------------------------------------------------------------- RabbitMQ

    def queue(self, label: str, **arguments: Any) -> str:
        """Declare the queue ``label`` (with ``arguments``, e.g. ``x-queue-type``);
        durable, because a stream must be. Returns its full name."""
        name = self._remember(self.settings.name(label), self.queues)
        with rabbit_client.open_channel(self.settings, confirm=False) as channel:
            rabbit_client.declare_queue(channel, name, durable=True, **arguments)
        return name

    def fanout(self, label: str, queues: Iterable[str] = ()) -> str:
        """Declare the fanout exchange ``label`` and bind ``queues`` to it."""
        name = self._remember(self.settings.name(label), self.exchanges)
        with rabbit_client.open_channel(self.settings, confirm=False) as channel:
            rabbit_client.declare_exchange(channel, name, "fanout")
            for queue_name in queues:
                rabbit_client.bind_queue(channel, queue_name, name)
        return name

    def publish(
        self, messages: Sequence[Message], *, queue: str = "", exchange: str = ""
    ) -> int:
        """Publish ``messages`` to a queue (default exchange) or to an exchange, each
        confirmed by the broker; the message text doubles as the AMQP message id."""
        with rabbit_client.open_channel(self.settings) as channel:
            for message in messages:
                rabbit_client.publish(channel, message, queue, exchange, persistent=False,
                                      message_id=message.message)
        return len(messages)

    def queue_depth(self, queue_name: str) -> int:
        """Messages ready in a classic queue (AMQP's passive declare)."""
        with rabbit_client.open_channel(self.settings, confirm=False) as channel:
            return channel.queue_declare(queue_name, passive=True).method.message_count

    def read_queue(
        self,
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
        connection = rabbit_client.connect(self.settings)
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

    # ---------------------------------------------------------------- cleanup

    def clean_up(self, settle_s: float = 0.3, attempts: int = 3) -> dict[str, int]:
        """Delete everything this run created (consumers must be stopped first)."""
        kafka_client.delete_groups(self.groups, settings=self.settings)
        left = list(self.topics)
        for _ in range(attempts):
            kafka_client.delete_topics(left, settings=self.settings)
            # On a broker that auto-creates topics (auto.create.topics.enable;
            # the launcher's and docker-compose's do not), a deleted topic can
            # come straight back with 1 partition: kafka-python 3.0 asks for
            # auto-creation in every metadata request, so a request from a
            # client that has just closed revives it.
            time.sleep(settle_s)
            existing = kafka_client.make_admin(self.settings)
            try:
                left = [name for name in left if name in set(existing.list_topics())]
            finally:
                existing.close()
            if not left:
                break
            log.info("deleted topics came back, deleting again: %s", left)
        if left:
            log.warning("topics still there after %d deletes: %s", attempts, left)
        rabbit_client.delete_queues(self.queues, settings=self.settings)
        rabbit_client.delete_exchanges(self.exchanges, settings=self.settings)
        return {"topics": len(self.topics), "groups": len(self.groups),
                "queues": len(self.queues), "exchanges": len(self.exchanges)}

