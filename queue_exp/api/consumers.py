"""The API's background consumers: one consumer thread per broker (see
:mod:`queue_exp.clients.consumers`) that reconnects by itself after an outage
and keeps what it receives in a bounded :class:`MessageStore`.

Messages are stored first and confirmed after (Kafka: the offsets are committed
automatically once the records are stored; RabbitMQ: one ``basic_ack`` with
``multiple=True`` for each stored batch), so a crash means redelivery, never loss.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from collections.abc import Iterable
from datetime import datetime
from datetime import timezone
from typing import Any

from fastapi import APIRouter
from fastapi import Request
from fastapi.concurrency import run_in_threadpool

from queue_exp.clients import kafka
from queue_exp.clients import rabbitmq
from queue_exp.clients.consumers import KafkaConsumerThread
from queue_exp.clients.consumers import RabbitConsumerThread
from queue_exp.config import Settings
from queue_exp.errors import BrokerUnavailable

log = logging.getLogger(__name__)


def iso_from_epoch(seconds: float) -> str:
    """``time.time()`` as the consumers show arrival times: UTC, milliseconds."""
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="milliseconds")


class Deferred:
    """A received message whose dict is built only when someone looks at it.

    A consumer can receive tens of thousands of messages a second while the store
    keeps only the newest ``capacity``; decoding each one as it arrives would spend
    most of the consumer's time on messages nobody will ever read. The dict is
    built on the first ``snapshot()`` that includes it, then kept.
    """

    __slots__ = ("_render", "_args", "_value")

    def __init__(self, render: Callable[..., dict[str, Any]], *args: Any) -> None:
        self._render = render
        self._args = args
        self._value: dict[str, Any] | None = None

    def value(self) -> dict[str, Any]:
        # two snapshots may render at once: harmless, both get the same result
        if self._value is None:
            self._value = self._render(*self._args)
        return self._value


def _materialize(item: dict[str, Any] | Deferred) -> dict[str, Any]:
    return item.value() if type(item) is Deferred else item


class MessageStore:
    """The newest ``capacity`` received messages, oldest first; thread-safe.

    Bounded so that a consumer left running for hours cannot grow memory without
    limit; ``received`` keeps counting what was dropped. Items are dicts, or
    :class:`Deferred` ones that ``snapshot()`` turns into dicts.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._items: deque[dict[str, Any] | Deferred] = deque(maxlen=capacity)
        self._received = 0
        self._lock = threading.Lock()

    def add(self, item: dict[str, Any] | Deferred) -> None:
        self.extend((item,))

    def extend(self, items: Iterable[dict[str, Any] | Deferred]) -> None:
        """Add a batch at once (one lock round trip per poll, not per message)."""
        items = list(items)
        with self._lock:
            self._items.extend(items)
            self._received += len(items)

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            items = list(self._items)
        # outside the lock: the consumer thread keeps adding while this renders
        return [_materialize(item) for item in items]

    def newest(self, count: int) -> list[dict[str, Any]]:
        """The ``count`` newest messages, newest first (renders only those)."""
        with self._lock:
            items = [self._items[-i] for i in range(1, min(count, len(self._items)) + 1)]
        return [_materialize(item) for item in items]

    @property
    def received(self) -> int:
        with self._lock:
            return self._received

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._received = 0


def _received_record(record: Any, received_at: float) -> dict[str, Any]:
    item = kafka.record_to_dict(record)
    item["received_at"] = iso_from_epoch(received_at)
    return item


def _received_delivery(method: Any, body: bytes, queue: str, received_at: float
                       ) -> dict[str, Any]:
    item = rabbitmq.delivery_to_dict(method, body, queue)
    item["received_at"] = iso_from_epoch(received_at)
    return item


class KafkaApiConsumer(KafkaConsumerThread):
    """Reads ``topic`` in group ``group_id`` into ``store``; after a restart it
    resumes where the group left off (offsets are auto-committed at the next
    poll, i.e. after the records were stored)."""

    poll_s = 0.5  # the API's consumers need not stop faster than this

    def __init__(self, topic: str, group_id: str, store: MessageStore,
                 settings: Settings) -> None:
        super().__init__([topic], self._on_batch, group_id=group_id,
                         name="api-kafka-consumer", settings=settings, reconnect=True)
        self.store = store

    def _on_batch(self, _consumer: Any, batch: dict) -> None:
        received_at = time.time()  # one poll, one arrival time
        # decoded only if someone reads them (the store keeps the newest few)
        self.store.extend(Deferred(_received_record, r, received_at)
                          for records in batch.values() for r in records)


class RabbitApiConsumer(RabbitConsumerThread):
    """Reads ``queue`` (declared durable) into ``store``, acking each batch once it
    is stored."""

    poll_s = 0.5

    def __init__(self, queue: str, store: MessageStore, settings: Settings) -> None:
        # at most 100 unacked messages in flight to us: enough to keep the pipe
        # full, small enough that a crash redelivers little
        super().__init__(queue, self._on_message, prefetch=100, declare=True,
                         queue_arguments=settings.rabbitmq_queue_arguments,
                         after_poll=self._after_poll, name="api-rabbitmq-consumer",
                         settings=settings, reconnect=True)
        self.store = store
        self._batch: list[Deferred] = []
        self._last_tag = 0

    def _session(self) -> None:
        self._batch = []  # delivery tags of a closed channel cannot be acked on a new one
        super()._session()

    def _on_message(self, _thread: Any, _channel: Any, method: Any, _props: Any,
                    body: bytes) -> None:
        # decoded only if someone reads it (the store keeps the newest few)
        self._batch.append(Deferred(_received_delivery, method, body, self.queue, time.time()))
        self._last_tag = method.delivery_tag

    def _after_poll(self, channel: Any) -> None:
        if self._batch:
            # store first, then one ack for everything up to the last delivery
            self.store.extend(self._batch)
            self._batch = []
            channel.basic_ack(self._last_tag, multiple=True)


async def start_consumer(service: Any) -> dict[str, Any]:
    """Start a service's background consumer (idempotent) and wait, bounded, until
    it reads. ``service`` has ``broker``, ``consumer``, ``ping()``, ``prepare()``
    (what must exist before the consumer starts) and ``where()``."""
    extra = service.where()
    if service.consumer.running:
        return {"status": "already running", **extra}
    health = await run_in_threadpool(service.ping)
    if not health["reachable"]:
        raise BrokerUnavailable(service.broker, health["address"])
    await run_in_threadpool(service.prepare)
    started = service.consumer.start()
    # wait (bounded) until it is connected, so "started" means it is reading
    await run_in_threadpool(service.consumer.ready.wait, 5.0)
    return {"status": "started" if started else "already running", **extra}


def messages_reply(service: Any) -> dict[str, Any]:
    """What a service's background consumer has received, oldest first."""
    return {
        "consumer_running": service.consumer.running,
        "received": service.store.received,
        "capacity": service.store.capacity,
        "messages": service.store.snapshot(),
    }


def add_consumer_routes(router: APIRouter, state_key: str) -> None:
    """``POST /consume`` and ``GET /messages`` on ``router``, for the service at
    ``app.state.<state_key>`` (both brokers' routers have the same two)."""

    @router.post("/consume")
    async def consume(request: Request) -> dict[str, Any]:
        """Start the background consumer (a second call leaves the running one alone)."""
        return await start_consumer(getattr(request.app.state, state_key))

    @router.get("/messages")
    async def messages(request: Request) -> dict[str, Any]:
        """Messages the background consumer has received, oldest first (the newest N kept)."""
        return messages_reply(getattr(request.app.state, state_key))
