"""What every RabbitMQ experiment stands on: a :class:`Lab` that names this run's
queues, exchanges and topics and deletes them afterwards, and short-lived
channels to declare, bind, publish, count and drain with."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pika.adapters.blocking_connection import BlockingChannel

from queue_exp import kafka_client, rabbit_client, teaching
from queue_exp.config import Settings, get_settings
from queue_exp.messages import Message
from queue_exp.rabbit_client import open_channel  # re-exported: the lessons' channels
from queue_exp.rabbit_management import Management


class Lab:
    """Fresh names for one run of a notebook (``<lesson>.run-xxxxxx.<label>``), and
    the list of what to delete at the end."""

    def __init__(
        self, lesson: str, settings: Settings | None = None, namespace: str | None = None
    ) -> None:
        self.settings = settings or get_settings()
        self.namespace = namespace or teaching.fresh_namespace(lesson)
        self.queues: list[str] = []
        self.exchanges: list[str] = []
        self.topics: list[str] = []
        self._management: Management | None = None

    def _name(self, label: str, into: list[str]) -> str:
        name = f"{self.namespace}.{label}"
        if name not in into:
            into.append(name)
        return name

    def queue(self, label: str) -> str:
        """The name of this run's queue ``label`` (remembered for cleanup)."""
        return self._name(label, self.queues)

    def exchange(self, label: str) -> str:
        return self._name(label, self.exchanges)

    def topic(self, label: str) -> str:
        """A Kafka topic name, for the side-by-side comparisons."""
        return self._name(label, self.topics)

    def label(self, name: str) -> str:
        """``<namespace>.tasks`` -> ``tasks``, for tables that should read the same every run."""
        return name.removeprefix(self.namespace + ".")

    @property
    def management(self) -> Management:
        """A client for the broker's management HTTP API (queue counters)."""
        if self._management is None:
            self._management = Management(self.settings)
        return self._management

    def cleanup(self, extra_queues: Sequence[str] = ()) -> dict[str, int]:
        """Delete every queue, exchange and topic this lab named (and ``extra_queues``,
        e.g. the API's); returns how many."""
        for name in extra_queues:
            if name not in self.queues:
                self.queues.append(name)
        rabbit_client.delete_queues(self.queues, settings=self.settings)
        rabbit_client.delete_exchanges(self.exchanges, settings=self.settings)
        if self.topics:
            kafka_client.delete_topics(self.topics, settings=self.settings)
        if self._management is not None:
            self._management.close()
            self._management = None
        return {
            "queues deleted": len(self.queues),
            "exchanges deleted": len(self.exchanges),
            "topics deleted": len(self.topics),
        }


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
            rabbit_client.publish(
                channel, Message.now(text, source=source), routing_key, exchange,
                persistent=persistent, **options,
            )
    return len(texts)


message_count = rabbit_client.ready_count


def drain(channel: BlockingChannel, queue_name: str, limit: int = 1000) -> list[dict[str, Any]]:
    """Take (and ack) everything ready in a queue right now, with ``basic_get``."""
    out = []
    for _ in range(limit):
        method, props, body = channel.basic_get(queue_name, auto_ack=True)
        if method is None:
            break
        item = rabbit_client.delivery_to_dict(method, body, queue_name)
        item["headers"] = dict(props.headers or {})
        out.append(item)
    return out


def declared_queue(
    queue_name: str, settings: Settings | None = None, *, durable: bool, **arguments: Any
) -> str:
    """Declare a queue (``arguments``: its ``x-...`` options) on a channel of its
    own; returns its name."""
    with open_channel(settings, confirm=False) as channel:
        rabbit_client.declare_queue(channel, queue_name, durable=durable, **arguments)
    return queue_name


def bound_exchange(
    lab: Lab, label: str, exchange_type: str, queue_name: str, binding_key: str = ""
) -> str:
    """Declare this run's exchange ``label`` and bind an existing queue to it; returns
    the exchange's name."""
    exchange = lab.exchange(label)
    with open_channel(lab.settings) as channel:
        rabbit_client.declare_exchange(channel, exchange, exchange_type)
        rabbit_client.bind_queue(channel, queue_name, exchange, binding_key)
    return exchange
