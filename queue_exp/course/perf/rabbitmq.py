"""RabbitMQ throughput (notebook 09): publish without confirms until the queue
holds everything, consume with a prefetch window, and the confirm modes of
notebook 07 in the same row shape."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import pika

from queue_exp.clients import rabbitmq
from queue_exp.config import Settings
from queue_exp.config import get_settings
from queue_exp.course.perf.cpu import Stopwatch
from queue_exp.course.perf.cpu import row
from queue_exp.messages import Message
from queue_exp.messages import encode
from queue_exp.waiting import wait_until


def rabbit_publish(
    queue: str,
    bodies: Sequence[bytes],
    *,
    what: str = "publish",
    persistent: bool = False,
    timeout_s: float = 20.0,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Publish every body to ``queue`` (through the default exchange) without
    publisher confirms, then wait until the queue holds them all: the run ends
    when the broker has every message, as with Kafka's acknowledged batches.
    The queue must exist, and nobody may be consuming from it."""
    settings = settings or get_settings()
    connection = rabbitmq.connect(settings)
    done = 0
    try:
        channel = connection.channel()

        def ready() -> int:
            return channel.queue_declare(queue, passive=True).method.message_count

        before = ready()
        props = pika.BasicProperties(
            content_type="application/json",
            delivery_mode=rabbitmq.PERSISTENT if persistent else pika.DeliveryMode.Transient,
        )
        deadline = time.monotonic() + timeout_s
        with Stopwatch(settings) as watch:
            for i, body in enumerate(bodies):
                if i % 500 == 0 and time.monotonic() > deadline:
                    break
                channel.basic_publish("", queue, body, props)
                done += 1
            try:
                left = max(deadline - time.monotonic(), 0.5)
                wait_until(lambda: ready() - before >= done, left, 0.005)
            except TimeoutError:
                done = ready() - before
    finally:
        if connection.is_open:
            connection.close()
    return row("rabbitmq", what, done, sum(len(b) for b in bodies[:done]), watch)


def rabbit_consume(
    queue: str,
    count: int,
    *,
    what: str = "consume",
    prefetch: int = 1000,
    timeout_s: float = 20.0,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Consume ``count`` messages from ``queue`` (or until ``timeout_s``), acking
    each one after it is read; at most ``prefetch`` unacked messages in flight."""
    settings = settings or get_settings()
    connection = rabbitmq.connect(settings)
    got = {"messages": 0, "bytes": 0}
    try:
        channel = connection.channel()
        # the window of unacked deliveries: too small and the consumer waits for the
        # broker to refill it, too large and a crash redelivers a lot
        channel.basic_qos(prefetch_count=prefetch)

        def on_message(ch, method, _props, body) -> None:
            got["messages"] += 1
            got["bytes"] += len(body)
            ch.basic_ack(method.delivery_tag)  # only now may the broker forget it
            if got["messages"] >= count:
                ch.stop_consuming()

        deadline = time.monotonic() + timeout_s
        with Stopwatch(settings) as watch:
            tag = channel.basic_consume(queue, on_message)
            while got["messages"] < count and time.monotonic() < deadline:
                connection.process_data_events(time_limit=0.1)
        if channel.is_open and tag in channel.consumer_tags:
            channel.basic_cancel(tag)  # unacked prefetched messages go back to the queue
    finally:
        if connection.is_open:
            connection.close()
    return row("rabbitmq", what, got["messages"], got["bytes"], watch, prefetch=prefetch)


def confirm_modes(
    queue: str,
    count: int = 1000,
    repeats: int = 1,
    settings: Settings | None = None,
) -> list[dict[str, Any]]:
    """Notebook 07's three publisher-confirm modes (persistent messages, durable
    queue) plus a run without confirms, in the same row shape. Without confirms
    the run ends when the queue holds every message (counted, not yet known to
    be on disk)."""
    from queue_exp.course.rabbitmq import confirm_timings

    settings = settings or get_settings()
    rows = confirm_timings(queue, count=count, repeats=repeats, settings=settings)
    for mode in rows:
        mode["all arrived"] = mode["all confirmed"]  # a confirmed message is in the queue
    bodies = [encode(Message.now("confirm me", source="confirms"))] * count
    runs = []
    for _ in range(repeats):
        runs.append(rabbit_publish(queue, bodies, persistent=True, settings=settings))
        _purge(queue, settings)
    seconds = sorted(r["seconds"] for r in runs)[len(runs) // 2]
    rows.append({
        "mode": "no confirms",
        "unconfirmed at most": None,
        "messages": count,
        "all confirmed": None,
        "seconds": seconds,
        "all arrived": all(r["messages"] == count for r in runs),
        "msg/s": round(count / max(seconds, 1e-9)),
    })
    return rows


def _purge(queue: str, settings: Settings) -> None:
    with rabbitmq.open_channel(settings, confirm=False) as channel:
        channel.queue_purge(queue)
