"""End-to-end latency (notebook 09): messages sent at a fixed rate while a
consumer thread in this process reads them; per message, consumer callback time
minus send time."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pika

from queue_exp.clients import kafka, rabbitmq
from queue_exp.clients.consumers import (
    KafkaConsumerThread,
    RabbitConsumerThread,
    start_in_order,
    stop_all,
)
from queue_exp.config import Settings, get_settings
from queue_exp.messages import Message, decode_lenient, encode
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


def kafka_latency(
    topic: str,
    count: int = 500,
    rate: float = 500.0,
    *,
    size: int = 200,
    label: str = "Kafka",
    timeout_s: float = 15.0,
    settings: Settings | None = None,
    **producer_config: Any,
) -> LatencyRun:
    """End-to-end latency: send ``count`` messages at ``rate`` per second (no
    waiting for acknowledgements), while a consumer thread in this process reads
    them; latency = consumer callback time - send call time, per message."""
    settings = settings or get_settings()
    sent_at = [math.nan] * count
    received: dict[int, float] = {}

    def on_batch(_consumer: Any, batch: dict) -> None:
        now = time.perf_counter()
        for records in batch.values():
            for record in records:
                received.setdefault(_seq(record.value), now)

    # no group: it reads every partition, from the end (later records are ours)
    reader = KafkaConsumerThread([topic], on_batch, start_at="end", name="perf-kafka-reader",
                                 settings=settings, fetch_max_wait_ms=100)
    start_in_order([reader], timeout_s)
    producer = None
    try:
        producer = kafka.make_producer(settings, **producer_config)
        producer.partitions_for(topic)
        bodies = [_latency_body(i, size) for i in range(count)]
        deadline = time.monotonic() + timeout_s
        sent = _paced_send(count, rate, lambda i: producer.send(topic, value=bodies[i]),
                           sent_at, deadline)
        producer.flush(timeout=max(deadline - time.monotonic(), 0.5))
        _await_arrivals(received, sent, deadline)
    finally:
        if producer is not None:
            producer.close(timeout=5)
        stop_all([reader])
    return LatencyRun(label, sent, _latencies(sent_at, received), rate)


def _await_arrivals(received: dict[int, float], sent: int, deadline: float) -> None:
    """Wait (bounded: until ``deadline``, and at least a short grace period for
    the last ones in flight) until ``sent`` messages have been received."""
    left = max(deadline - time.monotonic(), 2.0)
    try:
        wait_until(lambda: len(received) >= sent, left, 0.005)
    except TimeoutError:
        pass  # the caller reports what arrived


def _latencies(sent_at: Sequence[float], received: dict[int, float]) -> list[float]:
    return [1000 * (received[i] - sent_at[i]) for i in sorted(received)
            if i < len(sent_at) and not math.isnan(sent_at[i])]


def rabbit_latency(
    queue: str,
    count: int = 500,
    rate: float = 500.0,
    *,
    size: int = 200,
    label: str = "RabbitMQ",
    prefetch: int = 100,
    timeout_s: float = 15.0,
    settings: Settings | None = None,
) -> LatencyRun:
    """End-to-end latency through a queue: publish ``count`` transient messages at
    ``rate`` per second without confirms, while a consumer thread with its own
    connection reads (and acks) them. The queue must exist."""
    settings = settings or get_settings()
    sent_at = [math.nan] * count
    received: dict[int, float] = {}

    def on_message(_worker, channel, method, _props, body) -> None:
        now = time.perf_counter()
        channel.basic_ack(method.delivery_tag)
        received.setdefault(_seq(body), now)

    reader = RabbitConsumerThread(queue, on_message, prefetch=prefetch,
                                  name="perf-rabbit-reader", settings=settings)
    start_in_order([reader], timeout_s)
    connection = None
    try:
        connection = rabbitmq.connect(settings)
        channel = connection.channel()
        props = pika.BasicProperties(content_type="application/json")
        bodies = [_latency_body(i, size) for i in range(count)]
        deadline = time.monotonic() + timeout_s
        sent = _paced_send(count, rate,
                           lambda i: channel.basic_publish("", queue, bodies[i], props),
                           sent_at, deadline)
        _await_arrivals(received, sent, deadline)
    finally:
        if connection is not None and connection.is_open:
            connection.close()
        stop_all([reader])
    return LatencyRun(label, sent, _latencies(sent_at, received), rate)
