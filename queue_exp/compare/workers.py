"""Consumers that run side by side, each in a thread of its own: a Kafka consumer
group (:class:`KafkaGroup`) and competing RabbitMQ workers (:class:`RabbitWorkers`).

Both call the same kind of handler for every message, ``handler(worker, item)``
where ``item`` is the message as a dict (``message``, ``key``, and where it came
from), and the handler answers ``DONE`` or ``RETRY``:

* RabbitMQ: ``DONE`` acks the delivery; ``RETRY`` nacks it with ``requeue=True``,
  so the broker puts it back in the queue for any worker.
* Kafka: ``DONE`` moves on; ``RETRY`` seeks the partition back to the record, so
  the same consumer reads it (and everything after it) again. A consumer group
  has no per-record "give it to someone else" (Kafka 4.2's share groups add
  one; kafka-python does not speak their protocol).

Every handling is recorded (:attr:`handled`): when it started and ended
(``start``, ``t``: seconds since the workers were created), the worker, and the
outcome. Each thread opens, uses and closes its own client (a ``KafkaConsumer``
and a pika connection belong to the thread that made them), checks a stop
event at least every 100 ms, and is joined with a timeout.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from kafka import ConsumerRebalanceListener

from queue_exp import kafka_client, rabbit_client, teaching
from queue_exp.config import Settings, get_settings

log = logging.getLogger(__name__)

DONE = "done"
RETRY = "retry"

Handler = Callable[[str, dict[str, Any]], str]


def just_done(_worker: str, _item: dict[str, Any]) -> str:
    """The default handler: every message is handled at once."""
    return DONE


class _Workers:
    """What both kinds share: threads, the handled log, start/stop, waits."""

    kind = "worker"

    def __init__(self, size: int, handler: Handler | None) -> None:
        if size < 1:
            raise ValueError("size must be at least 1")
        self.size = size
        self.handler = handler or just_done
        self.names = [f"{self.kind}-{i + 1}" for i in range(size)]
        self.handled: list[dict[str, Any]] = []
        self.errors: dict[str, str] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
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

    def _check(self) -> None:
        if self.errors:
            name, error = next(iter(self.errors.items()))
            raise RuntimeError(f"{name} failed: {error}")

    def done_messages(self) -> list[str]:
        """The messages handled successfully so far, in the order they were finished."""
        with self._lock:
            return [h["message"] for h in self.handled if h["outcome"] == DONE]

    def wait_done(self, count: int, timeout_s: float = 15.0) -> list[dict[str, Any]]:
        """Wait until ``count`` messages were handled successfully; returns the log."""

        def enough() -> bool:
            self._check()
            return len(self.done_messages()) >= count

        try:
            teaching.wait_for(enough, timeout_s=timeout_s, interval_s=0.01)
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
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout_s)
            if thread.is_alive():
                log.warning("%s did not stop within %.0f s", thread.name, timeout_s)


class _Member(ConsumerRebalanceListener):
    """Tracks one group member's partitions; called inside poll(), in its thread."""

    def __init__(self) -> None:
        self.partitions: list[int] | None = None  # None while a rebalance is under way
        self.assigned_at = float("-inf")

    def on_partitions_revoked(self, revoked: Any) -> None:
        self.partitions = None

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.partitions = sorted(tp.partition for tp in assigned)
        self.assigned_at = time.monotonic()


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
        super().__init__(size, handler)
        self.topic = topic
        self.group_id = group_id
        self.settings = settings or get_settings()
        self.members = {name: _Member() for name in self.names}

    def start(self, timeout_s: float = 20.0) -> KafkaGroup:
        partitions = kafka_client.partitions_of(self.topic, self.settings)
        if not partitions:
            raise ValueError(f"topic {self.topic!r} does not exist")
        since = time.monotonic()
        for name in self.names:
            thread = threading.Thread(target=self._run, args=(name,), daemon=True,
                                      name=f"queue_exp-compare-{name}")
            self._threads.append(thread)
            thread.start()

        def settled() -> bool:
            self._check()
            members = self.members.values()
            if any(m.partitions is None or m.assigned_at < since for m in members):
                return False
            return sorted(p for m in members for p in m.partitions) == partitions

        try:
            teaching.wait_for(settled, timeout_s=timeout_s, interval_s=0.05)
        except TimeoutError:
            seen = {name: m.partitions for name, m in self.members.items()}
            self.close()
            raise TimeoutError(
                f"group {self.group_id!r} did not settle within {timeout_s} s; "
                f"partitions per member (None: still rebalancing): {seen}"
            ) from None
        except BaseException:
            self.close()
            raise
        return self

    def assignment(self) -> dict[str, list[int]]:
        return {name: list(m.partitions or []) for name, m in self.members.items()}

    def _run(self, name: str) -> None:
        consumer = None
        try:
            # The range assignor deals partitions out in member-id order, and a
            # member id starts with the client id: consumer-1 sorts first.
            consumer = kafka_client.make_consumer(
                group_id=self.group_id, enable_auto_commit=False,
                client_id=self.settings.name(f"{self.group_id}.{name}"),
                settings=self.settings,
            )
            consumer.subscribe([self.topic], listener=self.members[name])
            # Know the topic's partitions before the first join. Otherwise a
            # leader may assign from empty metadata and rejoin when it arrives,
            # and kafka-python 3.0 can drop that rejoin if poll()'s timeout ends
            # mid-join: the member then never gets its partitions.
            consumer.partitions_for_topic(self.topic)
            while not self._stop.is_set():
                # the poll timeout bounds how long close() waits for this thread
                batch = consumer.poll(timeout_ms=100, max_records=50)
                for tp, records in batch.items():
                    for record in records:
                        if self._stop.is_set():
                            return
                        item = kafka_client.record_to_dict(record)
                        item["redelivered"] = None  # Kafka has no such flag
                        if self._handle(name, item) == RETRY:
                            # read it again: back to this record, dropping the
                            # rest of this partition's batch (it comes again)
                            consumer.seek(tp, record.offset)
                            break
        except Exception as exc:  # noqa: BLE001 - reported by start()/wait_done()
            self.errors[name] = f"{type(exc).__name__}: {exc}"
            log.warning("%s stopped: %s", name, self.errors[name])
        finally:
            if consumer is not None:
                # leave the group now rather than after session_timeout_ms
                consumer.close(autocommit=False)


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
        super().__init__(size, handler)
        self.queue_name = queue_name
        self.prefetch = prefetch
        self.settings = settings or get_settings()

    def start(self, timeout_s: float = 10.0) -> RabbitWorkers:
        """Start the workers one after another, each subscribed before the next
        starts (so the broker's round-robin follows their numbers)."""
        for name in self.names:
            ready = threading.Event()
            thread = threading.Thread(target=self._run, args=(name, ready), daemon=True,
                                      name=f"queue_exp-compare-{name}")
            self._threads.append(thread)
            thread.start()
            if not ready.wait(timeout_s) or name in self.errors:
                self.close()
                raise RuntimeError(
                    f"{name} could not subscribe to the queue: "
                    f"{self.errors.get(name, f'no answer within {timeout_s} s')}"
                )
        return self

    def _run(self, name: str, ready: threading.Event) -> None:
        connection = None
        try:
            connection = rabbit_client.connect(self.settings)
            channel = connection.channel()
            # at most `prefetch` unacked messages at this worker: with 1, a busy
            # worker gets nothing new and the next message goes to a free one
            channel.basic_qos(prefetch_count=self.prefetch)

            def on_message(ch, method, _props, body) -> None:
                item = rabbit_client.delivery_to_dict(method, body, self.queue_name)
                if self._handle(name, item) == RETRY:
                    ch.basic_nack(method.delivery_tag, requeue=True)
                else:
                    ch.basic_ack(method.delivery_tag)  # only now may the queue forget it

            channel.basic_consume(self.queue_name, on_message)
            ready.set()
            while not self._stop.is_set():
                connection.process_data_events(time_limit=0.05)
        except Exception as exc:  # noqa: BLE001 - reported by start()/wait_done()
            self.errors[name] = f"{type(exc).__name__}: {exc}"
            log.warning("%s stopped: %s", name, self.errors[name])
        finally:
            ready.set()
            # closing hands every unacked delivery back to the queue
            if connection is not None and connection.is_open:
                connection.close()
