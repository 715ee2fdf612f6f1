"""Retention: the same messages written to a Kafka topic, a classic RabbitMQ
queue and a RabbitMQ stream, then read three times. Which reads get them?"""

from __future__ import annotations

from typing import Any

from pika.exceptions import AMQPError
from pika.exceptions import ChannelClosedByBroker

from queue_exp.clients import kafka_admin
from queue_exp.clients import rabbitmq
from queue_exp.course.compare.io import numbered
from queue_exp.course.compare.io import publish
from queue_exp.course.compare.io import read_queue
from queue_exp.course.kafka import log as kafka_log
from queue_exp.course.kafka.log import produce
from queue_exp.course.run import Run
from queue_exp.waiting import wait_until

STREAM = {"x-queue-type": "stream"}


def read_three_times(run: Run, count: int = 1000, timeout_s: float = 20.0) -> dict[str, Any]:
    """Write ``count`` messages to each store and read each three times.

    Returns ``{"reads": rows, "still stored": {...}, "stream": its name}``; a row
    per read: store, read number, how that read starts, how many messages it got
    (and how many distinct ones)."""
    messages = numbered(count)
    rows: list[dict[str, Any]] = []

    def row(store: str, n: int, how: str, got: list[dict[str, Any]]) -> None:
        distinct = {m["message"] for m in got}
        rows.append({"store": store, "read": n, "how the read starts": how,
                     "messages": len(got), "distinct": len(distinct)})

    topic = run.topic("events", partitions=3)
    produce(topic, messages, spread=True, settings=run.settings)
    reader, replay = run.group("reader"), run.group("replay")

    def kafka_read(group: str, commit: bool) -> list[dict[str, Any]]:
        return kafka_log.read_to_end(topic, group_id=group, commit=commit,
                                         timeout_s=timeout_s, settings=run.settings)

    store = "Kafka topic"
    row(store, 1, "new group `reader` (earliest); commits", kafka_read(reader, True))
    row(store, 2, "group `reader` again: at its committed offsets", kafka_read(reader, True))
    row(store, 3, "new group `replay` (earliest)", kafka_read(replay, False))

    def rabbit_read(name: str, offset: str | None = None) -> list[dict[str, Any]]:
        return read_queue(run.settings, name, offset=offset, max_messages=count,
                          timeout_s=timeout_s)

    queue = run.queue("events")
    publish(run.settings, messages, queue=queue)
    store = "RabbitMQ classic queue"
    row(store, 1, "a consumer; acks each message", rabbit_read(queue))
    row(store, 2, "the same again", rabbit_read(queue))
    row(store, 3, "another consumer", rabbit_read(queue))

    stream = run.queue("events-stream", **STREAM)
    publish(run.settings, messages, queue=stream)
    store = "RabbitMQ stream"
    row(store, 1, "x-stream-offset = first; acks each message", rabbit_read(stream, "first"))
    row(store, 2, "no x-stream-offset (the default: next)", rabbit_read(stream))
    row(store, 3, "x-stream-offset = first", rabbit_read(stream, "first"))

    stored = {
        "Kafka topic (records in the log)":
            sum(r["records"] for r in kafka_admin.log_offsets(topic, run.settings)),
        "RabbitMQ classic queue (messages ready)": rabbitmq.ready_count(queue, run.settings),
        "RabbitMQ stream (messages in the stream)": _stream_count(run, stream, count, timeout_s),
    }
    return {"reads": rows, "still stored": stored, "stream": stream}


def _stream_count(run: Run, stream: str, expected: int, timeout_s: float) -> int | None:
    """What the stream holds, as the management API counts it (AMQP's passive
    declare says 0 for a stream). Its statistics refresh about every second and
    catch up in steps: wait (bounded) for ``expected``, else report the last count."""
    seen: list[int | None] = [None]

    def caught_up() -> bool:
        seen[0] = (run.management.queue(stream) or {}).get("messages")
        return seen[0] == expected

    try:
        wait_until(caught_up, timeout_s, 0.25)
    except TimeoutError:
        pass  # the table shows what the broker said
    return seen[0]


def stream_consumer_rules(run: Run, stream: str) -> list[dict[str, Any]]:
    """Subscribe to a stream the way one subscribes to a classic queue, and see
    what the broker says: without a prefetch limit, and with automatic acks.
    Each attempt uses a connection of its own (the broker may close it)."""
    attempts = (
        ("no basic.qos prefetch, manual acks", None, False),
        ("prefetch 100, auto_ack=True", 100, True),
        ("prefetch 100, manual acks", 100, False),
    )
    rows = []
    for consumer, prefetch, auto_ack in attempts:
        connection = rabbitmq.connect(run.settings)
        try:
            channel = connection.channel()
            if prefetch:
                channel.basic_qos(prefetch_count=prefetch)
            # offset "next": nothing is delivered, so closing has nothing to
            # nack (pika nacks undelivered messages on close; a stream answers
            # a nack by closing the connection)
            channel.basic_consume(stream, lambda *_: None, auto_ack=auto_ack,
                                  arguments={"x-stream-offset": "next"})
            connection.process_data_events(time_limit=0.2)
            answer = "accepted"
        except AMQPError as exc:
            code, text = getattr(exc, "reply_code", "?"), getattr(exc, "reply_text", str(exc))
            # the broker names the queue; show this run's label, the same every run
            closed = "channel" if isinstance(exc, ChannelClosedByBroker) else "connection"
            answer = f"{closed} closed: {code} {text}".replace(stream, run.label(stream))
        finally:
            if connection.is_open:
                connection.close()
        rows.append({"consumer": consumer, "broker's answer": answer})
    return rows
