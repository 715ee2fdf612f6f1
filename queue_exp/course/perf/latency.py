"""End-to-end latency (notebook 09): messages sent at a fixed rate while a
consumer thread in this process reads them; per message, consumer callback time
minus send time."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Sequence
from contextlib import AbstractContextManager
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from typing import Any

import pika

from queue_exp.clients import kafka
from queue_exp.clients import rabbitmq
from queue_exp.clients.consumers import ConsumerThread
from queue_exp.clients.consumers import KafkaConsumerThread
from queue_exp.clients.consumers import RabbitConsumerThread
from queue_exp.clients.consumers import start_in_order
from queue_exp.clients.consumers import stop_all
from queue_exp.config import Settings
from queue_exp.config import get_settings
from queue_exp.messages import Message
from queue_exp.messages import decode_lenient
from queue_exp.messages import encode
from queue_exp.waiting import wait_until


def percentiles(samples: Sequence[float], points: Sequence[int] = (50, 95, 99)) -> dict[str, float]:
    """Nearest-rank percentiles (each is one of the samples, so p50 <= p95 <= p99
    <= max always holds) and the maximum; NaN for no samples."""
    ordered = sorted(samples)
    out = {}
    for p in points:
        out[f"p{p}"] = ordered[max(math.ceil(p / 100 * len(ordered)) - 1, 0)] if ordered \
            else math.nan
    out["max"] = ordered[-1] if ordered else math.nan
    return out


@dataclass
class LatencyRun:
    """One latency experiment: how many messages were sent, and each received
    message's latency in milliseconds (send call to consumer callback)."""

    label: str
    sent: int
    latencies_ms: list[float] = field(default_factory=list)
    rate: float | None = None

    @property
    def received(self) -> int:
        return len(self.latencies_ms)

    def summary(self) -> dict[str, Any]:
        stats = percentiles(self.latencies_ms)
        return {
            "run": self.label,
            "sent": self.sent,
            "received": self.received,
            **{f"{k} ms": round(v, 2) for k, v in stats.items()},
        }


def _seq(body: bytes) -> int:
    """The sequence number a latency run puts first in each message's text."""
    return int(decode_lenient(body)["message"].split(" ", 1)[0])


def _paced_send(count: int, rate: float, send: Callable[[int], None], sent_at: list[float],
                deadline: float) -> int:
    """Call ``send(i)`` ``count`` times at ``rate`` per second (stopping at
    ``deadline``), recording when each send started; returns how many were sent."""
    start = time.perf_counter()
    for i in range(count):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)  # pacing: the gap between two sends *is* the experiment
        if time.monotonic() > deadline:
            return i
        sent_at[i] = time.perf_counter()
        send(i)
    return count


def _latency_body(i: int, size: int) -> bytes:
    text = f"{i} " + "x" * max(0, size - 80)
    return encode(Message(message=text, timestamp=datetime(2025, 1, 1), source="latency"))


Sender = Callable[[], AbstractContextManager[tuple[Callable[[bytes], Any], Callable[[], None]]]]


def _latency_run(label: str, count: int, rate: float, size: int, timeout_s: float,
                 reader_for: Callable[[Callable[[Iterable[bytes]], None]], ConsumerThread],
                 sender: Sender) -> LatencyRun:
    """The experiment both brokers share: a reader thread notes when each body
    arrives; ``sender()`` gives ``(send(body), flush())``; bodies go out paced."""
    sent_at = [math.nan] * count
    received: dict[int, float] = {}

    def arrived(bodies: Iterable[bytes]) -> None:
        now = time.perf_counter()
        for body in bodies:
            received.setdefault(_seq(body), now)

    reader = reader_for(arrived)
    start_in_order([reader], timeout_s)
    try:
        with sender() as (send, flush):
            bodies = [_latency_body(i, size) for i in range(count)]
            deadline = time.monotonic() + timeout_s
            sent = _paced_send(count, rate, lambda i: send(bodies[i]), sent_at, deadline)
            flush()
            # bounded: until the deadline, with a short grace for the last in flight
            try:
                wait_until(lambda: len(received) >= sent,
                           max(deadline - time.monotonic(), 2.0), 0.005)
            except TimeoutError:
                pass  # the run reports what arrived
    finally:
        stop_all([reader])
    latencies = [1000 * (received[i] - sent_at[i]) for i in sorted(received)
                 if i < count and not math.isnan(sent_at[i])]
    return LatencyRun(label, sent, latencies, rate)


def latency(
    broker: str,
    target: str,
    count: int = 500,
    rate: float = 500.0,
    *,
    size: int = 200,
    label: str | None = None,
    prefetch: int = 100,
    timeout_s: float = 15.0,
    settings: Settings | None = None,
    **producer_config: Any,
) -> LatencyRun:
    """End-to-end latency through a Kafka topic or a RabbitMQ queue (``broker``
    ``"kafka"`` or ``"rabbitmq"``, ``target`` the topic or the existing queue):
    send ``count`` messages at ``rate`` per second, without waiting for
    acknowledgements or confirms, while a consumer thread in this process reads
    them; latency = consumer callback time - send call time, per message.
    ``producer_config`` goes to Kafka's producer (e.g. ``linger_ms``); ``prefetch``
    is the RabbitMQ consumer's window."""
    settings = settings or get_settings()
    if broker == "kafka":
        ends = _kafka_ends(target, settings, timeout_s, producer_config)
    elif broker == "rabbitmq":
        ends = _rabbitmq_ends(target, settings, prefetch)
    else:
        raise ValueError("broker is 'kafka' or 'rabbitmq'")
    label = label or {"kafka": "Kafka", "rabbitmq": "RabbitMQ"}[broker]
    return _latency_run(label, count, rate, size, timeout_s, *ends)


def _kafka_ends(topic: str, settings: Settings, timeout_s: float,
                producer_config: dict[str, Any]) -> tuple[Any, Sender]:
    def reader_for(arrived: Callable[[Iterable[bytes]], None]) -> ConsumerThread:
        # no group: it reads every partition, from the end (later records are ours)
        return KafkaConsumerThread(
            [topic], lambda _c, batch: arrived(r.value for rs in batch.values() for r in rs),
            start_at="end", name="perf-kafka-reader", settings=settings, fetch_max_wait_ms=100)

    @contextmanager
    def sender():
        producer = kafka.make_producer(settings, **producer_config)
        try:
            producer.partitions_for(topic)  # metadata first: sends never wait for it
            yield (lambda body: producer.send(topic, value=body)), (
                lambda: producer.flush(timeout=timeout_s))
        finally:
            producer.close(timeout=5)

    return reader_for, sender


def _rabbitmq_ends(queue: str, settings: Settings, prefetch: int) -> tuple[Any, Sender]:
    def reader_for(arrived: Callable[[Iterable[bytes]], None]) -> ConsumerThread:
        def on_message(_worker, channel, method, _props, body) -> None:
            arrived((body,))
            channel.basic_ack(method.delivery_tag)

        return RabbitConsumerThread(queue, on_message, prefetch=prefetch,
                                    name="perf-rabbit-reader", settings=settings)

    @contextmanager
    def sender():
        with rabbitmq.open_channel(settings, confirm=False) as channel:
            props = pika.BasicProperties(content_type="application/json")
            yield (lambda body: channel.basic_publish("", queue, body, props)), (lambda: None)

    return reader_for, sender
