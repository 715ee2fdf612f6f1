"""A consumer-group lab: several consumers of one group, each in its own thread,
added and removed one at a time, so a notebook can watch Kafka move partitions.

Each consumer is a :class:`~queue_exp.clients.consumers.KafkaConsumerThread` (a
``KafkaConsumer`` must not be shared between threads). The lab records which
consumer handled which record, and when::

    with ConsumerGroupLab(topic, group_id) as lab:
        lab.add_consumer()          # waits until the rebalance is over
        lab.send(12)                # waits until every record was handled
        lab.assignment()
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from queue_exp.clients import kafka
from queue_exp.clients import kafka_admin
from queue_exp.clients.consumers import KafkaConsumerThread
from queue_exp.clients.consumers import stop_all
from queue_exp.clients.consumers import wait_settled
from queue_exp.config import Settings
from queue_exp.config import get_settings
from queue_exp.course.kafka.log import USERS
from queue_exp.messages import Message
from queue_exp.waiting import wait_until

log = logging.getLogger(__name__)


class ConsumerGroupLab:
    """Consumers ``consumer-1``, ``consumer-2``, ... of ``group_id`` on ``topic``."""

    def __init__(self, topic: str, group_id: str, settings: Settings | None = None) -> None:
        self.topic = topic
        self.group_id = group_id
        self.settings = settings or get_settings()
        self.partitions = kafka_admin.partitions_of(topic, self.settings)
        if not self.partitions:
            raise ValueError(f"topic {topic!r} does not exist")
        self.members: list[KafkaConsumerThread] = []
        self.events: list[dict[str, Any]] = []  # membership changes: t, what
        self._handled: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._producer = None
        self._numbers: dict[tuple[int, int], int] = {}  # (partition, offset) -> send order
        self._round = 0

    def __enter__(self) -> ConsumerGroupLab:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def _now(self) -> float:
        return round(time.monotonic() - self._started, 3)

    def _handled_by(self, name: str, record: Any) -> None:
        item = kafka.record_to_dict(record)
        with self._lock:
            self._handled.append({
                "t": self._now(), "consumer": name, "partition": record.partition,
                "offset": record.offset, "key": item.get("key"), "message": item.get("message"),
            })

    def _event(self, what: str) -> None:
        self.events.append({"t": self._now(), "n": len(self._numbers), "event": what})

    def _live(self) -> list[KafkaConsumerThread]:
        return [m for m in self.members if m.running and not m.stopping]

    def _handler(self, name: str):
        def on_batch(_consumer: Any, batch: dict) -> None:
            for records in batch.values():
                for record in records:
                    self._handled_by(name, record)
        return on_batch

    def add_consumer(self, timeout_s: float = 15.0) -> float:
        """Start one more consumer and wait for the rebalance it triggers; returns
        the seconds the rebalance took."""
        name = f"consumer-{len(self.members) + 1}"
        # The group leader orders members by member id, which the broker builds
        # from the client id: consumer-1 sorts first, and so on.
        member = KafkaConsumerThread(
            [self.topic], self._handler(name), group_id=self.group_id, name=name,
            settings=self.settings, client_id=self.settings.name(f"{self.group_id}.{name}"))
        self.members.append(member)
        since = time.monotonic()
        self._event(f"+ {name}")
        member.start()
        return wait_settled(self.members, self.partitions, since, timeout_s)

    def stop_consumer(self, name: str, timeout_s: float = 15.0) -> float:
        """Stop consumer ``name`` (it leaves the group) and wait for the rebalance."""
        member = next(m for m in self._live() if m.name == name)
        since = time.monotonic()
        self._event(f"- {name}")
        member.stop(timeout_s)
        return wait_settled(self.members, self.partitions, since, timeout_s)

    def assignment(self) -> list[dict[str, Any]]:
        """One row per live consumer: the partitions it owns (an empty list: idle)."""
        return [
            {"consumer": m.name, "partitions": list(m.partitions or []),
             "idle": not m.partitions}
            for m in self._live()
        ]

    def send(self, count: int = 12, timeout_s: float = 15.0) -> list[dict[str, Any]]:
        """Produce ``count`` keyed messages (keys cycle through the chapter's users)
        and wait until the group handled each; one row per consumer: how many of
        this round's messages it handled, from which partitions."""
        if self._producer is None:
            self._producer = kafka.make_producer(self.settings)
        self._round += 1
        futures = [
            kafka.submit(
                self._producer, self.topic,
                Message.now(f"round {self._round} #{i + 1}", key=USERS[i % len(USERS)]),
            )
            for i in range(count)
        ]
        sent = [(meta.partition, meta.offset) for meta in (f.get(timeout=10) for f in futures)]
        first = len(self._numbers) + 1
        self._numbers.update({where: first + i for i, where in enumerate(sent)})

        def this_round() -> list[dict[str, Any]] | None:
            with self._lock:
                rows = [h for h in self._handled if (h["partition"], h["offset"]) in sent]
            return rows if {(h["partition"], h["offset"]) for h in rows} == set(sent) else None

        rows = wait_until(this_round, timeout_s=timeout_s, interval_s=0.05)
        return [
            {"consumer": m.name,
             "partitions": sorted({r["partition"] for r in rows if r["consumer"] == m.name}),
             "messages": sum(r["consumer"] == m.name for r in rows)}
            for m in self._live()
        ]

    def handled(self) -> list[dict[str, Any]]:
        """Every record any consumer handled: ``n`` (its number in send order),
        ``t`` (seconds since the lab started), consumer, partition, offset, key, message."""
        with self._lock:
            rows = list(self._handled)
        return [{"n": self._numbers.get((h["partition"], h["offset"])), **h} for h in rows]

    def close(self, timeout_s: float = 15.0) -> None:
        """Stop every consumer (they leave the group) and the producer."""
        try:
            stop_all(self.members, timeout_s)
        finally:
            if self._producer is not None:
                self._producer.close(timeout=5)
                self._producer = None
