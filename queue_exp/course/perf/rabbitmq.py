"""RabbitMQ throughput (notebook 09): publish without confirms until the queue
holds everything, consume with a prefetch window, and the confirm modes of
notebook 07 in the same row shape."""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import pika

from queue_exp.clients import rabbitmq
from queue_exp.config import Settings
from queue_exp.config import get_settings
from queue_exp.course.perf.cpu import Stopwatch
from queue_exp.course.perf.cpu import row
from queue_exp.waiting import wait_until


def rabbit_publish(
    queue: str,
    bodies: Sequence[bytes],
    *,
    seconds: float | None = None,
    what: str = "publish",
    persistent: bool = False,
    timeout_s: float = 20.0,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Publish every body to ``queue`` (through the default exchange) without
    publisher confirms, then wait until the queue holds them all: the run ends
    when the broker has every message, as with Kafka's acknowledged batches.
    With ``seconds``, publish the bodies over and over for that long instead.
    The queue must exist, and nobody may be consuming from it."""
    settings = settings or get_settings()
    connection = rabbitmq.connect(settings)
    done = nbytes = 0
    arrived = True
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
            stop_sending = time.monotonic() + (seconds if seconds is not None else timeout_s)
            bodies_out = itertools.cycle(bodies) if seconds is not None else iter(bodies)
            for body in bodies_out:
                if time.monotonic() > min(stop_sending, deadline):
                    break
                channel.basic_publish("", queue, body, props)
                done += 1
                nbytes += len(body)
            try:
                left = max(deadline - time.monotonic(), 0.5)
                wait_until(lambda: ready() - before >= done, left, 0.005)
            except TimeoutError:
                arrived = False
    finally:
        if connection.is_open:
            connection.close()
    return row("rabbitmq", what, done, nbytes, watch, **{"all arrived": arrived})


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
    return row("rabbitmq", what, got["messages"], got["bytes"], watch, prefetch=prefetch,
               **{"all read": got["messages"] == count})


# messages per confirm mode: a tenth to a few tenths of a second each on a laptop
# (repeat the measurement for the spread); a mode twenty times faster than
# another gets more messages, not a run twenty times shorter
CONFIRM_COUNTS = {"one at a time": 300, "in batches": 1_500, "asynchronously": 5_000,
                  "no confirms": 5_000}
# at most this many unconfirmed (None: no confirms at all); a sliding window?
_WINDOWS = {"one at a time": (1, False), "in batches": (100, False),
            "asynchronously": (1000, True), "no confirms": (None, False)}


def confirm_modes(
    queue: str,
    counts: Mapping[str, int] | None = None,
    *,
    timeout_s: float = 20.0,
    settings: Settings | None = None,
) -> list[dict[str, Any]]:
    """Notebook 07's three publisher-confirm modes (persistent messages, a
    durable queue: its own publisher, on pika's callback-driven
    ``SelectConnection``) plus a run without confirms on the same publisher,
    once each, ``counts[mode]`` messages per mode (default :data:`CONFIRM_COUNTS`).
    The run without confirms ends when the queue holds every message (counted,
    not yet known to be on disk). The queue is purged after each mode."""
    # notebook 07's code, measured here as it was there
    from queue_exp.course.rabbitmq.channels import declared_queue
    from queue_exp.course.rabbitmq.confirms import publish_timed

    settings = settings or get_settings()
    declared_queue(queue, settings, durable=True)
    counts = {**CONFIRM_COUNTS, **(counts or {})}
    rows = []
    for mode, count in counts.items():
        window, sliding = _WINDOWS[mode]
        run = publish_timed(queue, count, window, sliding, settings, timeout_s)
        seconds = run["seconds"]
        if window is None:
            confirmed, all_in = None, run["arrived"] >= count
        else:
            confirmed = all_in = run["confirmed"] == count
        _purge(queue, settings)
        rows.append({
            "mode": mode,
            "unconfirmed at most": window,
            "messages": count,
            "seconds": round(seconds, 3),
            "msg/s": round(count / max(seconds, 1e-9)),
            "all confirmed": confirmed,
            "all arrived": all_in,
        })
    return rows


def _purge(queue: str, settings: Settings) -> None:
    with rabbitmq.open_channel(settings, confirm=False) as channel:
        channel.queue_purge(queue)
