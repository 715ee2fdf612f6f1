"""Consumers that run side by side, each in a thread of its own: a Kafka consumer
group (:class:`KafkaGroup`), a Kafka share group (:class:`ShareGroup`) and
competing RabbitMQ workers (:class:`RabbitWorkers`).

Both call the same kind of handler for every message, ``handler(worker, item)``
where ``item`` is the message as a dict (``message``, ``key``, and where it came
from), and the handler answers ``DONE`` or ``RETRY``:

* RabbitMQ: ``DONE`` acks the delivery; ``RETRY`` nacks it with ``requeue=True``,
  so the broker puts it back in the queue for any worker.
* Kafka consumer group: ``DONE`` moves on; ``RETRY`` seeks the partition back to
  the record, so the same consumer reads it (and everything after it) again. A
  consumer group has no per-record "give it to someone else".
* Kafka share group: ``DONE`` accepts the record; ``RETRY`` releases it, so the
  broker hands it out again, to any member, with its delivery count raised: the
  per-record "give it to someone else" a consumer group lacks.

Every handling is recorded (:attr:`handled`): when it started and ended
(``start``, ``t``: seconds since the workers were created), the worker, and the
outcome. Each consumer is one of :mod:`queue_exp.clients.consumers`' threads:
it owns its client, checks a stop flag at least every 100 ms, and is joined
with a timeout.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import AcknowledgeType

from queue_exp.clients import consumers
from queue_exp.clients import kafka
from queue_exp.clients import kafka_admin
from queue_exp.clients import rabbitmq
from queue_exp.clients import share
from queue_exp.config import Settings
from queue_exp.config import get_settings
from queue_exp.waiting import wait_until

DONE = "done"
RETRY = "retry"

Handler = Callable[[str, dict[str, Any]], str]


def just_done(_worker: str, _item: dict[str, Any]) -> str:
    """The default handler: every message is handled at once."""
    return DONE


class _Workers:
    """What both kinds share: the consumer threads, the handled log, the waits."""

    kind = "worker"

    def __init__(self, size: int, handler: Handler | None, settings: Settings | None) -> None:
        if size < 1:
            raise ValueError("size must be at least 1")
        self.size = size
        self.handler = handler or just_done
        self.settings = settings or get_settings()
        self.names = [f"{self.kind}-{i + 1}" for i in range(size)]
        self.handled: list[dict[str, Any]] = []
        self.threads: list[consumers.ConsumerThread] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._t0 = time.monotonic()

    def __enter__(self):
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def clock(self) -> float:
        """Seconds since these workers were created (the ``t`` of :attr:`handled`)."""
        return time.monotonic() - self._t0

    def _handle(self, worker: str, item: dict[str, Any]) -> str:
        start = self.clock()
        outcome = self.handler(worker, item)
        with self._lock:
            self.handled.append({
                "start": round(start, 4), "t": round(self.clock(), 4), "worker": worker,
                "message": item.get("message"), "key": item.get("key"),
                "redelivered": item.get("redelivered"), "outcome": outcome,
            })
        return outcome

    def done_messages(self) -> list[str]:
        """The messages handled successfully so far, in the order they were finished."""
        with self._lock:
            return [h["message"] for h in self.handled if h["outcome"] == DONE]

    def wait_done(self, count: int, timeout_s: float = 15.0) -> list[dict[str, Any]]:
        """Wait until ``count`` messages were handled successfully; returns the log."""

        def enough() -> bool:
            failed = [t for t in self.threads if t.error]
            if failed:
                raise RuntimeError(f"{failed[0].name} failed: {failed[0].error}")
            return len(self.done_messages()) >= count

        try:
            wait_until(enough, timeout_s, 0.01)
        except TimeoutError:
            raise TimeoutError(
                f"only {len(self.done_messages())} of {count} messages handled "
                f"within {timeout_s} s"
            ) from None
        with self._lock:
            return list(self.handled)

    def per_worker(self) -> list[dict[str, Any]]:
        """One row per worker: how many messages it handled successfully."""
        with self._lock:
            done = [h["worker"] for h in self.handled if h["outcome"] == DONE]
        return [{"worker": name, "messages": done.count(name)} for name in self.names]

    def close(self, timeout_s: float = 10.0) -> None:
        self._closing.set()  # a batch being handled stops at the next message
        consumers.stop_all(self.threads, timeout_s, check=False)  # failures: raised by wait_done


class KafkaGroup(_Workers):
    """``size`` consumers of group ``group_id`` on ``topic``: ``consumer-1``, ...

    ``start()`` returns once the group has settled (every member has its
    partitions, each partition owned once). Nothing is committed: the
    experiments here need no second session of the same group."""

    kind = "consumer"

    def __init__(
        self,
        topic: str,
        group_id: str,
        size: int,
        handler: Handler | None = None,
        settings: Settings | None = None,
    ) -> None:
        super().__init__(size, handler, settings)
        self.topic = topic
        self.group_id = group_id
        # The range assignor deals partitions out in member-id order, and a
        # member id starts with the client id: consumer-1 sorts first.
        self.threads = [
            consumers.KafkaConsumerThread(
                [topic], self._on_batch(name), group_id=group_id, name=name,
                settings=self.settings, max_records=50, enable_auto_commit=False,
                client_id=self.settings.name(f"{group_id}.{name}"))
            for name in self.names
        ]

    def start(self, timeout_s: float = 20.0) -> KafkaGroup:
        partitions = kafka_admin.partitions_of(self.topic, self.settings)
        if not partitions:
            raise ValueError(f"topic {self.topic!r} does not exist")
        since = time.monotonic()
        for thread in self.threads:
            thread.start()
        try:
            consumers.wait_settled(self.threads, partitions, since, timeout_s)
        except BaseException:
            self.close()
            raise
        return self

    def assignment(self) -> dict[str, list[int]]:
        return {t.name: list(t.partitions or []) for t in self.threads}

    def _on_batch(self, name: str):
        def on_batch(consumer: Any, batch: dict) -> None:
            for tp, records in batch.items():
                for record in records:
                    if self._closing.is_set():
                        return
                    item = kafka.record_to_dict(record)
                    item["redelivered"] = None  # Kafka has no such flag
                    if self._handle(name, item) == RETRY:
                        # read it again: back to this record, dropping the rest
                        # of this partition's batch (it comes again)
                        consumer.seek(tp, record.offset)
                        break
        return on_batch


class RabbitWorkers(_Workers):
    """``size`` competing consumers on one queue: ``worker-1``, ... Each acks a
    message when its handler says ``DONE``, nacks it back into the queue on
    ``RETRY``. ``prefetch`` is how many unacked messages a worker may hold."""

    kind = "worker"

    def __init__(
        self,
        queue_name: str,
        size: int,
        handler: Handler | None = None,
        prefetch: int = 1,
        settings: Settings | None = None,
    ) -> None:
        super().__init__(size, handler, settings)
        self.queue_name = queue_name
        # at most `prefetch` unacked messages at a worker: with 1, a busy worker
        # gets nothing new and the next message goes to a free one
        self.threads = [
            consumers.RabbitConsumerThread(queue_name, self._on_message, prefetch=prefetch,
                                           name=name, settings=self.settings)
            for name in self.names
        ]

    def start(self, timeout_s: float = 10.0) -> RabbitWorkers:
        """Start the workers one after another, each subscribed before the next
        starts (so the broker's round-robin follows their numbers)."""
        consumers.start_in_order(self.threads, timeout_s)
        return self

    def _on_message(self, worker: consumers.RabbitConsumerThread, channel: Any, method: Any,
                    _props: Any, body: bytes) -> None:
        item = rabbitmq.delivery_to_dict(method, body, self.queue_name)
        if self._handle(worker.name, item) == RETRY:
            channel.basic_nack(method.delivery_tag, requeue=True)
        else:
            channel.basic_ack(method.delivery_tag)  # only now may the queue forget it


class ShareGroup(_Workers):
    """``size`` members of share group ``group_id`` on ``topic``: ``member-1``, ...
    Each accepts a record when its handler says ``DONE`` and releases it on
    ``RETRY``; ``item["delivery_count"]`` says how often it was delivered.

    ``start()`` returns once the broker lists every member with every partition
    of the topic assigned (in a share group all members share all partitions).
    ``max_poll_records`` bounds how many records one fetch takes (Kafka: 500),
    so that a batch written at once is spread over the members."""

    kind = "member"

    def __init__(self, topic: str, group_id: str, size: int, handler: Handler | None = None,
                 settings: Settings | None = None, max_poll_records: int = 1) -> None:
        super().__init__(size, handler, settings)
        self.topic = topic
        self.group_id = group_id
        self.listed: list[dict[str, Any]] = []  # the members, as the broker listed them
        # a new share group starts at the end of the log: these start at its beginning
        share.set_group_config(group_id, {share.AUTO_OFFSET_RESET: "earliest"}, self.settings)
        self.threads = [
            share.ShareConsumerThread([topic], self._on_batch(name), group_id=group_id,
                                      name=name, settings=self.settings,
                                      max_poll_records=max_poll_records)
            for name in self.names
        ]

    def start(self, timeout_s: float = 20.0) -> ShareGroup:
        partitions = kafka_admin.partitions_of(self.topic, self.settings)
        if not partitions:
            raise ValueError(f"topic {self.topic!r} does not exist")
        consumers.start_in_order(self.threads)
        wanted = sorted(f"{self.topic}:{p}" for p in partitions)

        def all_assigned() -> bool:
            self.listed = share.members(self.group_id, self.settings)
            return len(self.listed) == self.size and all(
                sorted(m["assignment"]) == wanted for m in self.listed)

        try:
            wait_until(all_assigned, timeout_s, 0.2, what="every share-group member assigned")
        except BaseException:
            self.close()
            raise
        return self

    def assignment(self) -> dict[str, list[int]]:
        """Each member's partitions, as ``kafka-share-groups --members`` listed them
        when the group started."""
        prefix = self.settings.name(f"{self.group_id}.")
        return {m["client_id"].removeprefix(prefix):
                sorted(int(a.rsplit(":", 1)[1]) for a in m["assignment"])
                for m in self.listed}

    def _on_batch(self, name: str):
        def on_batch(consumer: Any, messages: list[Any]) -> None:
            for message in messages:
                if self._closing.is_set():
                    return  # unacknowledged: closing the consumer releases them
                item = kafka.record_to_dict(_Record(message))
                item["delivery_count"] = message.delivery_count()
                item["redelivered"] = message.delivery_count() > 1
                outcome = self._handle(name, item)
                consumer.acknowledge(message, AcknowledgeType.RELEASE if outcome == RETRY
                                     else AcknowledgeType.ACCEPT)
            consumer.commit_sync(10)
        return on_batch


class _Record:
    """A confluent-kafka message with the attributes of a kafka-python record,
    so both are turned into a dict by the same ``record_to_dict``."""

    def __init__(self, message: Any) -> None:
        self.topic, self.partition, self.offset = (message.topic(), message.partition(),
                                                   message.offset())
        self.key, self.value = message.key(), message.value()
