"""A consumer-group lab: several consumers of one group, each in its own thread,
added and removed one at a time, so a notebook can watch Kafka move partitions.

Each consumer is created, polled and closed by its own thread (a ``KafkaConsumer``
must not be shared between threads) and stops when its stop event is set. The lab
records which consumer handled which record, and when::

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

from kafka import ConsumerRebalanceListener

from queue_exp import kafka_client, teaching
from queue_exp.config import Settings, get_settings
from queue_exp.kafka_lessons import USERS
from queue_exp.messages import Message

log = logging.getLogger(__name__)


class _Member(ConsumerRebalanceListener):
    """One consumer of the lab's group, running in its own thread."""

    def __init__(self, lab: ConsumerGroupLab, name: str) -> None:
        self.lab = lab
        self.name = name
        self.stop_event = threading.Event()
        self.partitions: list[int] | None = None  # None while a rebalance is under way
        self.assigned_at = float("-inf")
        self.error: str | None = None
        self.thread = threading.Thread(target=self._run, name=f"queue_exp-{name}", daemon=True)

    # ConsumerRebalanceListener: called inside poll(), in this member's thread.
    def on_partitions_revoked(self, revoked: Any) -> None:
        self.partitions = None

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.partitions = sorted(tp.partition for tp in assigned)
        self.assigned_at = time.monotonic()

    def _run(self) -> None:
        lab = self.lab
        consumer = None
        try:
            # The group leader orders members by member id, which the broker
            # builds from the client id: consumer-1 sorts first, and so on.
            consumer = kafka_client.make_consumer(
                group_id=lab.group_id,
                client_id=lab.settings.name(f"{lab.group_id}.{self.name}"),
                settings=lab.settings,
            )
            consumer.subscribe([lab.topic], listener=self)
            while not self.stop_event.is_set():
                # the poll timeout bounds how long stop() waits for this thread
                for records in consumer.poll(timeout_ms=200).values():
                    for record in records:
                        lab._handled_by(self.name, record)
        except Exception as exc:  # noqa: BLE001 - reported to the lab, which raises it
            self.error = f"{type(exc).__name__}: {exc}"
            log.warning("%s stopped: %s", self.name, self.error)
        finally:
            if consumer is not None:
                # leaving the group (instead of just vanishing) makes the rebalance
                # start at once rather than after session_timeout_ms
                consumer.close()


class ConsumerGroupLab:
    """Consumers ``consumer-1``, ``consumer-2``, ... of ``group_id`` on ``topic``."""

    def __init__(self, topic: str, group_id: str, settings: Settings | None = None) -> None:
        self.topic = topic
        self.group_id = group_id
        self.settings = settings or get_settings()
        self.partitions = kafka_client.partitions_of(topic, self.settings)
        if not self.partitions:
            raise ValueError(f"topic {topic!r} does not exist")
        self.members: list[_Member] = []
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
        item = kafka_client.record_to_dict(record)
        with self._lock:
            self._handled.append({
                "t": self._now(), "consumer": name, "partition": record.partition,
                "offset": record.offset, "key": item.get("key"), "message": item.get("message"),
            })

    def _event(self, what: str) -> None:
        self.events.append({"t": self._now(), "n": len(self._numbers), "event": what})

    def _live(self) -> list[_Member]:
        return [m for m in self.members if not m.stop_event.is_set()]

    def _wait_rebalanced(self, since: float, timeout_s: float) -> float:
        """Wait until every live member got its partitions after ``since`` and
        together they own each partition once; returns how long that took."""

        def done() -> bool:
            for member in self.members:
                if member.error:
                    raise RuntimeError(f"{member.name} failed: {member.error}")
            live = self._live()
            if any(m.partitions is None or m.assigned_at < since for m in live):
                return False
            return sorted(p for m in live for p in m.partitions) == self.partitions

        teaching.wait_for(done, timeout_s=timeout_s, interval_s=0.05)
        return time.monotonic() - since

    def add_consumer(self, timeout_s: float = 15.0) -> float:
        """Start one more consumer and wait for the rebalance it triggers; returns
        the seconds the rebalance took."""
        member = _Member(self, f"consumer-{len(self.members) + 1}")
        self.members.append(member)
        since = time.monotonic()
        self._event(f"+ {member.name}")
        member.thread.start()
        return self._wait_rebalanced(since, timeout_s)

    def stop_consumer(self, name: str, timeout_s: float = 15.0) -> float:
        """Stop consumer ``name`` (it leaves the group) and wait for the rebalance."""
        member = next(m for m in self._live() if m.name == name)
        since = time.monotonic()
        self._event(f"- {name}")
        member.stop_event.set()
        member.thread.join(timeout_s)
        return self._wait_rebalanced(since, timeout_s)

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
            self._producer = kafka_client.make_producer(self.settings)
        self._round += 1
        futures = [
            kafka_client.submit(
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

        rows = teaching.wait_for(this_round, timeout_s=timeout_s, interval_s=0.05)
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
        for member in self.members:
            member.stop_event.set()
        for member in self.members:
            member.thread.join(timeout_s)
            if member.thread.is_alive():
                log.warning("%s did not stop within %.0f s", member.name, timeout_s)
        if self._producer is not None:
            self._producer.close(timeout=5)
            self._producer = None
