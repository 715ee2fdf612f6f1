"""Consumer threads, one shape for both brokers: the API's background consumers,
the lessons' workers, the comparison's groups and the latency readers all use them.

A :class:`KafkaConsumerThread` or :class:`RabbitConsumerThread` owns its client
(a ``KafkaConsumer`` or a pika ``BlockingConnection`` belongs to the thread that
made it), polls in slices of ``poll_s`` seconds and checks its stop flag between
them, so :meth:`ConsumerThread.stop` returns within about a poll interval.
With ``reconnect=True`` a session that fails (the broker went away) is retried
with a capped backoff; otherwise the thread ends and keeps the :attr:`error`.

    worker = RabbitConsumerThread(queue, on_message, prefetch=1)
    start_in_order([worker])       # returns once the broker has registered it
    ...
    stop_all([worker])             # raises if a consumer failed meanwhile
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Sequence
from typing import Any

from kafka import ConsumerRebalanceListener
from kafka import KafkaConsumer
from kafka import TopicPartition

from queue_exp.clients import kafka
from queue_exp.clients import kafka_admin
from queue_exp.clients import rabbitmq
from queue_exp.config import Settings
from queue_exp.config import get_settings
from queue_exp.waiting import wait_until

log = logging.getLogger(__name__)


class ConsumerThread:
    """A consumer session (:meth:`_session`) in a daemon thread, stopped by a flag."""

    poll_s = 0.1

    def __init__(self, name: str, settings: Settings | None = None, *,
                 reconnect: bool = False) -> None:
        self.name = name
        self.settings = settings or get_settings()
        self.reconnect = reconnect
        self.ready = threading.Event()  # set while subscribed: deliveries may come
        self.error: str | None = None  # the last failure, "Type: message"
        self._stop = threading.Event()
        self._wake = threading.Event()  # cuts a reconnect backoff short
        self._thread: threading.Thread | None = None

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> bool:
        """Start the thread; ``False`` if it is already running."""
        if self.running:
            return False
        self._stop.clear()
        self.error = None
        self._thread = threading.Thread(target=self._main, name=f"queue_exp-{self.name}",
                                        daemon=True)
        self._thread.start()
        return True

    def wait_ready(self, timeout_s: float = 10.0) -> None:
        """Wait until subscribed; ``RuntimeError`` if the consumer failed or took too long."""
        def settled() -> bool:
            # a reconnecting thread keeps trying after an error; the others give up
            failed = self.error is not None and not self.reconnect
            return self.ready.is_set() or failed or not self.running

        try:
            wait_until(settled, timeout_s, 0.01)
        except TimeoutError:
            pass
        if not self.ready.is_set():
            raise RuntimeError(f"{self.name} could not start consuming: "
                               f"{self.error or f'no answer within {timeout_s:g} s'}")

    def wake(self) -> None:
        """Retry the connection now instead of at the end of the current backoff."""
        self._wake.set()

    def request_stop(self) -> None:
        """Ask the thread to end after its current poll (without waiting for it)."""
        self._stop.set()
        self._wake.set()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the thread and wait (at most ``timeout_s``) until it has closed its client."""
        self.request_stop()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.warning("%s did not stop within %.1f s", self.name, timeout_s)
        self._thread = None

    def _main(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            try:
                self._session()
                backoff = 0.5
            except Exception as exc:  # noqa: BLE001 - any broker failure: kept, maybe retried
                self.error = f"{type(exc).__name__}: {exc}"
                log.warning("%s: %s", self.name, self.error)
                if not self.reconnect:
                    return
            finally:
                self.ready.clear()
            if not self.reconnect:
                return
            self._wake.wait(backoff)
            self._wake.clear()
            backoff = min(backoff * 2, 5.0)

    def _session(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


def start_in_order(threads: Sequence[ConsumerThread], timeout_s: float = 10.0) -> None:
    """Start consumers one after another, each subscribed before the next starts
    (so RabbitMQ's round-robin, and Kafka's member order, follow the order given).
    If one cannot start, all are stopped and ``RuntimeError`` says why."""
    for thread in threads:
        thread.start()
        try:
            thread.wait_ready(timeout_s)
        except RuntimeError:
            for other in threads:
                other.stop()
            raise


def stop_all(threads: Iterable[ConsumerThread], timeout_s: float = 10.0,
             check: bool = True) -> None:
    """Stop every consumer; then, with ``check``, ``RuntimeError`` if any of them
    had failed."""
    threads = list(threads)
    for thread in threads:
        thread.request_stop()  # all at once: each then leaves within a poll
    for thread in threads:
        thread.stop(timeout_s)
    failed = [t for t in threads if t.error]
    if check and failed:
        raise RuntimeError(f"{failed[0].name} failed: {failed[0].error}")


# ------------------------------------------------------------------ Kafka

Batch = dict[TopicPartition, list[Any]]


class KafkaConsumerThread(ConsumerThread, ConsumerRebalanceListener):
    """A ``KafkaConsumer`` in a thread, calling ``on_batch(consumer, batch)`` for
    every non-empty ``poll()`` (``batch``: partition -> records).

    With a ``group_id`` it subscribes to ``topics`` and the group hands it
    partitions: :attr:`partitions` (``None`` while a rebalance is under way) and
    :attr:`assigned_at` follow the group's decisions. Without one it assigns
    itself every partition of ``topics`` and starts at ``start_at``
    (``"beginning"`` or ``"end"``). ``config`` goes to ``KafkaConsumer``."""

    def __init__(
        self,
        topics: Sequence[str],
        on_batch: Callable[[KafkaConsumer, Batch], None],
        *,
        group_id: str | None = None,
        start_at: str = "beginning",
        name: str = "kafka-consumer",
        settings: Settings | None = None,
        reconnect: bool = False,
        max_records: int | None = None,
        **config: Any,
    ) -> None:
        super().__init__(name, settings, reconnect=reconnect)
        if start_at not in ("beginning", "end"):
            raise ValueError("start_at is 'beginning' or 'end'")
        self.topics = list(topics)
        self.on_batch = on_batch
        self.group_id = group_id
        self.start_at = start_at
        self.max_records = max_records
        self.config = config
        self.partitions: list[int] | None = None
        self.assigned_at = float("-inf")

    # ConsumerRebalanceListener: called inside poll(), in this thread
    def on_partitions_revoked(self, revoked: Any) -> None:
        self.partitions = None

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.partitions = sorted(tp.partition for tp in assigned)
        self.assigned_at = time.monotonic()

    def _session(self) -> None:
        consumer = kafka.make_consumer(group_id=self.group_id, settings=self.settings,
                                       from_beginning=self.start_at == "beginning",
                                       **self.config)
        try:
            if self.group_id is None:
                self._assign_all(consumer)
            else:
                consumer.subscribe(self.topics, listener=self)
                kafka.know_partitions(consumer, self.topics)
            self.ready.set()
            timeout_ms = int(self.poll_s * 1000)
            while not self.stopping:
                # the poll timeout bounds how long stop() waits for this thread
                batch = consumer.poll(timeout_ms=timeout_ms, max_records=self.max_records)
                if batch and not self.stopping:
                    self.on_batch(consumer, batch)
        finally:
            # leaving the group now (not after session_timeout_ms) starts the
            # rebalance at once; commits only where the consumer auto-commits
            consumer.close(autocommit=self.config.get("enable_auto_commit", True))

    def _assign_all(self, consumer: KafkaConsumer) -> None:
        tps = [TopicPartition(topic, p) for topic in self.topics
               for p in kafka_admin.partitions_of(topic, self.settings)]
        consumer.assign(tps)
        if self.start_at == "end":
            consumer.seek_to_end(*tps)
        else:
            consumer.seek_to_beginning(*tps)
        for tp in tps:
            consumer.position(tp)  # resolve the start now: later records are ours
        self.on_partitions_assigned(tps)


def wait_settled(members: Sequence[KafkaConsumerThread], partitions: Sequence[int],
                 since: float, timeout_s: float) -> float:
    """Wait until every running member of a group got its partitions after
    ``since`` (a ``time.monotonic()``) and together they own each of
    ``partitions`` once; returns how long that took from ``since``.
    ``RuntimeError`` if a member failed, ``TimeoutError`` naming who has what."""

    def settled() -> bool:
        for member in members:
            if member.error:
                raise RuntimeError(f"{member.name} failed: {member.error}")
        live = [m for m in members if m.running and not m.stopping]
        if any(m.partitions is None or m.assigned_at < since for m in live):
            return False
        return sorted(p for m in live for p in m.partitions) == sorted(partitions)

    try:
        wait_until(settled, timeout_s, 0.02)
    except TimeoutError:
        seen = {m.name: m.partitions for m in members if m.running}
        raise TimeoutError(f"the group did not settle within {timeout_s:g} s; partitions per "
                           f"member (None: still rebalancing): {seen}") from None
    return time.monotonic() - since


# ------------------------------------------------------------------ RabbitMQ

OnMessage = Callable[["RabbitConsumerThread", Any, Any, Any, bytes], None]


class RabbitConsumerThread(ConsumerThread):
    """A pika consumer on a connection of its own, calling ``on_message(thread,
    channel, method, properties, body)`` for each delivery.

    ``prefetch`` caps the unacked deliveries it holds (``None``: no cap);
    ``after_poll(channel)`` runs after each slice of I/O (e.g. to ack a batch);
    ``declare`` declares the (durable) queue first, with ``queue_arguments``
    (``arguments`` are the consumer's). Closing the connection, as stopping does,
    hands every unacked delivery back to the queue."""

    def __init__(
        self,
        queue: str,
        on_message: OnMessage,
        *,
        prefetch: int | None = None,
        auto_ack: bool = False,
        arguments: dict[str, Any] | None = None,
        declare: bool = False,
        queue_arguments: dict[str, Any] | None = None,
        after_poll: Callable[[Any], None] | None = None,
        name: str = "rabbitmq-consumer",
        settings: Settings | None = None,
        reconnect: bool = False,
    ) -> None:
        super().__init__(name, settings, reconnect=reconnect)
        self.queue = queue
        self.on_message = on_message
        self.prefetch = prefetch
        self.auto_ack = auto_ack
        self.arguments = arguments
        self.declare = declare
        self.queue_arguments = queue_arguments or {}
        self.after_poll = after_poll

    def _session(self) -> None:
        with rabbitmq.open_channel(self.settings, confirm=False) as channel:
            if self.declare:
                rabbitmq.declare_queue(channel, self.queue, **self.queue_arguments)
            if self.prefetch:
                channel.basic_qos(prefetch_count=self.prefetch)
            channel.basic_consume(
                self.queue, lambda ch, method, props, body: self.on_message(
                    self, ch, method, props, body),
                auto_ack=self.auto_ack, arguments=self.arguments,
                # the thread's name as its consumer tag: the management UI and /live
                # then say which worker holds which unacked messages
                consumer_tag=self.name)
            self.ready.set()  # the broker has registered us: deliveries may start
            while not self.stopping:
                # returns once it has dispatched what arrived, or after poll_s
                channel.connection.process_data_events(time_limit=self.poll_s)
                if self.after_poll is not None:
                    self.after_poll(channel)
