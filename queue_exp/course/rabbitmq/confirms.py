"""Publisher confirms (notebook 07): what waiting for the broker's ack costs one
at a time, in batches and asynchronously, and what ``mandatory`` adds for a
message no queue wants."""

from __future__ import annotations

import statistics
import time
from typing import Any

import pika
from pika.exceptions import UnroutableError

from queue_exp.clients import rabbitmq
from queue_exp.config import Settings
from queue_exp.config import get_settings
from queue_exp.course.rabbitmq.channels import declared_queue
from queue_exp.course.rabbitmq.channels import open_channel
from queue_exp.course.run import Run
from queue_exp.messages import Message


def publish_timed(
    queue_name: str,
    count: int,
    window: int | None,
    sliding: bool,
    settings: Settings,
    timeout_s: float,
) -> dict[str, Any]:
    """Publish ``count`` persistent messages on a ``SelectConnection`` (pika's
    callback-driven adapter) with publisher confirms, at most ``window``
    unconfirmed at any time. Without ``sliding`` the next batch goes out once the
    whole previous one is confirmed (window 1 = one at a time); with ``sliding``,
    every confirm makes room for more at once (asynchronous publishing).

    ``window=None``: no confirms, on the same kind of connection (so that the
    comparison is of confirms, not of clients): every message is published at
    once and the run ends when the queue holds them all (``arrived``)."""
    # one body and one set of properties for every message (not rabbitmq.publish,
    # which encodes each one): the timing should measure confirms, not encoding
    body = rabbitmq.encode(Message.now("confirm me", source="confirms"))
    props = pika.BasicProperties(delivery_mode=rabbitmq.PERSISTENT,
                                 content_type="application/json")
    state: dict[str, Any] = {"published": 0, "acked": 0, "nacked": 0, "start": None, "end": None,
                             "error": None, "arrived": 0}
    outstanding: set[int] = set()
    limit = count if window is None else window

    def publish_batch(channel) -> None:
        while state["published"] < count and len(outstanding) < limit:
            channel.basic_publish("", queue_name, body, props)
            state["published"] += 1
            outstanding.add(state["published"])  # delivery tags count 1, 2, 3, ...

    def on_confirm(frame) -> None:
        confirm = frame.method
        if confirm.multiple:  # one ack/nack may cover every tag up to this one
            done = {tag for tag in outstanding if tag <= confirm.delivery_tag}
        else:
            done = {confirm.delivery_tag} & outstanding
        outstanding.difference_update(done)
        key = "acked" if isinstance(confirm, pika.spec.Basic.Ack) else "nacked"
        state[key] += len(done)
        if state["acked"] + state["nacked"] >= count:
            state["end"] = time.perf_counter()
            connection.close()
        elif sliding or not outstanding:  # room again (or the whole batch is confirmed)
            publish_batch(channels[0])

    channels: list = []

    def count_arrived(channel) -> None:
        # a passive declare answers with the queue's message count; asked on the
        # publishing channel, it is answered after the publishes before it
        def on_count(frame) -> None:
            state["arrived"] = frame.method.message_count
            if state["arrived"] >= count:
                state["end"] = time.perf_counter()
                connection.close()
            else:
                count_arrived(channel)

        channel.queue_declare(queue_name, passive=True, callback=on_count)

    def on_channel(channel) -> None:
        channels.append(channel)
        channel.add_on_close_callback(lambda _ch, reason: fail(reason))

        def go(_frame) -> None:
            state["start"] = time.perf_counter()
            publish_batch(channel)
            if window is None:
                count_arrived(channel)

        if window is None:
            go(None)
        else:
            channel.confirm_delivery(ack_nack_callback=on_confirm, callback=go)

    def fail(reason: Any) -> None:
        if state["end"] is None and state["error"] is None:
            state["error"] = reason
        if connection.is_open:
            connection.close()

    def on_timeout() -> None:
        if state["end"] is None:
            fail(f"not all {'arrived' if window is None else 'confirmed'} within {timeout_s} s")
            if not connection.is_open and not connection.is_closing:
                connection.ioloop.stop()

    params = rabbitmq.connection_parameters(settings)
    connection = pika.SelectConnection(
        params,
        on_open_callback=lambda conn: conn.channel(on_open_callback=on_channel),
        on_open_error_callback=lambda conn, err: (fail(err), conn.ioloop.stop()),
        on_close_callback=lambda conn, reason: conn.ioloop.stop(),
    )
    connection.ioloop.call_later(timeout_s, on_timeout)
    connection.ioloop.start()
    if state["end"] is None:
        raise RuntimeError(f"confirmed publishing failed: {state['error']!r}")
    return {"confirmed": state["acked"], "nacked": state["nacked"],
            "arrived": state["arrived"], "seconds": state["end"] - state["start"]}


CONFIRM_MODES = ("one at a time", "in batches", "asynchronously")


def confirm_timings(
    queue_name: str,
    count: int = 1000,
    batch_size: int = 100,
    async_window: int = 1000,
    repeats: int = 3,
    settings: Settings | None = None,
    timeout_s: float = 20.0,
) -> list[dict[str, Any]]:
    """Publish the same ``count`` persistent messages to a durable queue in each
    confirm mode, ``repeats`` times; rows with the median time per mode."""
    settings = settings or get_settings()
    declared_queue(queue_name, settings, durable=True)
    modes = {  # mode: (at most this many unconfirmed, sliding window?)
        "one at a time": (1, False),
        "in batches": (batch_size, False),
        "asynchronously": (async_window, True),
    }
    rows = []
    for mode in CONFIRM_MODES:
        window, sliding = modes[mode]
        runs = []
        for _ in range(repeats):
            runs.append(
                publish_timed(queue_name, count, window, sliding, settings, timeout_s)
            )
            with open_channel(settings, confirm=False) as channel:
                channel.queue_purge(queue_name)
        seconds = statistics.median(r["seconds"] for r in runs)
        rows.append({
            "mode": mode,
            "unconfirmed at most": window,
            "messages": count,
            "all confirmed": all(r["confirmed"] == count for r in runs),
            "seconds": round(seconds, 3),
            "msg/s": round(count / seconds),
        })
    return rows


def unroutable_publish(run: Run) -> list[dict[str, Any]]:
    """Publish to an exchange with no bindings, without and with ``mandatory``."""
    exchange = run.name("nobody-listens")
    rows = []
    with open_channel(run.settings) as channel:
        rabbitmq.declare_exchange(channel, exchange, "direct")
        for mandatory in (False, True):
            row: dict[str, Any] = {"mandatory": mandatory}
            try:
                rabbitmq.publish(channel, Message.now("order 7"), "orders", exchange,
                                      mandatory=mandatory)
                row.update(outcome="confirmed (basic.ack)", returned="")
            except UnroutableError as exc:
                returned = exc.messages[0].method
                row.update(outcome="UnroutableError raised",
                           returned=f"{returned.reply_code} {returned.reply_text}")
            rows.append(row)
    return rows
