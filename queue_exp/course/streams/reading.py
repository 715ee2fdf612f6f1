"""Where a stream consumer starts (notebook 10): the same twelve messages read
from ``first``, ``last``, an offset, a timestamp and ``next`` with pika, and the
same five starts on a one-partition Kafka topic with kafka-python.

Every read is a new consumer that stops when nothing more arrives (a stream,
like any AMQP queue, has no "end"); nothing is removed by reading.
"""

from __future__ import annotations

import time
from datetime import datetime
from datetime import timezone
from typing import Any

from kafka import TopicPartition

from queue_exp.clients import kafka
from queue_exp.clients import kafka_admin
from queue_exp.clients import rabbitmq
from queue_exp.course.compare.io import numbered
from queue_exp.course.compare.io import publish
from queue_exp.course.compare.io import read_queue
from queue_exp.course.compare.table import numbers
from queue_exp.course.kafka import log as kafka_log
from queue_exp.course.run import Run
from queue_exp.messages import Message
from queue_exp.messages import decode_lenient

STREAM = {"x-queue-type": "stream"}  # the queue argument that makes a queue a stream
IDLE_S = 0.3  # a stream read ends when nothing more came for this long


def message_numbers(rows: list[dict[str, Any]]) -> list[int]:
    """``[{"message": "#3"}, ...]`` -> ``[3, ...]``."""
    return [int(str(r["message"]).removeprefix("#")) for r in rows]


def shown(rows: list[dict[str, Any]]) -> str:
    """What a read got, as the tables show it: ``#8–#12``, ``#12`` or ``none``."""
    return numbers(message_numbers(rows))


def next_second() -> datetime:
    """Wait until the clock has passed the next whole second (at most ~1 s) and
    return that second, as a UTC ``datetime``. AMQP timestamps have whole seconds,
    so a message written before this call is older than it, one written after is
    not older."""
    moment = int(time.time()) + 1
    time.sleep(max(0.0, moment - time.time()) + 0.05)
    return datetime.fromtimestamp(moment, timezone.utc)


def two_batches(run: Run, stream: str, first: int = 10, second: int = 2) -> datetime:
    """Publish ``#1``..``#first`` to ``stream``, wait for the next whole second,
    publish the next ``second`` messages; returns the moment between the two."""
    publish(run.settings, numbered(first), queue=stream)
    moment = next_second()
    publish(run.settings, numbered(first + second)[first:], queue=stream)
    return moment


def read_next_while_publishing(run: Run, stream: str, text: str,
                               timeout_s: float = 10.0) -> list[dict[str, Any]]:
    """Subscribe at ``next``, *then* publish one message: what the subscriber gets."""
    connection = rabbitmq.connect(run.settings)
    got: list[dict[str, Any]] = []
    try:
        channel = connection.channel()
        channel.basic_qos(prefetch_count=100)  # a stream consumer must set one

        def on_message(ch: Any, method: Any, _props: Any, body: bytes) -> None:
            got.append(decode_lenient(body))
            ch.basic_ack(method.delivery_tag)

        channel.basic_consume(stream, on_message, arguments={"x-stream-offset": "next"})
        connection.process_data_events(time_limit=0.2)  # subscribed before the publish
        publish(run.settings, [Message.now(text)], queue=stream)
        deadline = time.monotonic() + timeout_s
        while not got and time.monotonic() < deadline:
            connection.process_data_events(time_limit=0.1)
        connection.process_data_events(time_limit=IDLE_S)  # anything else that comes
    finally:
        if connection.is_open:
            connection.close()
    return got


def start_points(run: Run, timeout_s: float = 10.0) -> dict[str, Any]:
    """A new stream with ``#1``..``#12`` (``#11`` and ``#12`` a second after the
    rest), read by a new consumer from each start. Returns a row per read and
    the offsets the messages got."""
    stream = run.queue("starts", **STREAM)
    moment = two_batches(run, stream)

    def read(offset: Any) -> list[dict[str, Any]]:
        return read_queue(run.settings, stream, offset=offset, idle_s=IDLE_S,
                          timeout_s=timeout_s)

    everything = read("first")
    offset_of = {m["message"]: int(m["stream_offset"]) for m in everything}
    eighth = offset_of["#8"]
    reads = [
        ("first", "the oldest message still stored", everything),
        ("last", "the last chunk the broker wrote", read("last")),
        (f"{eighth} (the offset of #8)", "that offset", read(eighth)),
        ("a timestamp: the second before #11", "the first chunk written at or after it",
         read(moment)),
        ("next", "what is published after subscribing (#13 was)",
         read_next_while_publishing(run, stream, "#13", timeout_s)),
    ]
    rows = [{"x-stream-offset": start, "starts at": where, "got": shown(got),
             "messages": len(got)} for start, where, got in reads]
    return {"stream": stream, "rows": rows, "offsets": offset_of, "moment": moment}


def kafka_start_points(run: Run, timeout_s: float = 10.0) -> list[dict[str, Any]]:
    """The same twelve messages on a one-partition topic, read from the same five
    starting points with kafka-python (no group: nothing is committed)."""
    topic = run.topic("starts", partitions=1)
    kafka_log.produce(topic, numbered(10), settings=run.settings)
    moment = next_second()
    kafka_log.produce(topic, numbered(12)[10:], settings=run.settings)
    end = kafka_admin.log_offsets(topic, run.settings)[0]["end_offset"]

    def read_from(offset: int) -> list[dict[str, Any]]:
        consumer = kafka.make_consumer(settings=run.settings, enable_auto_commit=False)
        tp = TopicPartition(topic, 0)
        out: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout_s
        try:
            consumer.assign([tp])
            consumer.seek(tp, offset)
            while consumer.position(tp) < end and time.monotonic() < deadline:
                for records in consumer.poll(timeout_ms=200).values():
                    out.extend(kafka.record_to_dict(r) for r in records)
        finally:
            consumer.close(autocommit=False)
        return out

    reads = [
        ("seek_to_beginning() (or a new group, auto_offset_reset='earliest')",
         kafka_log.read_to_end(topic, timeout_s=timeout_s, settings=run.settings)),
        ("seek(end offset − 1): Kafka has no 'last'; this takes the last record",
         read_from(end - 1)),
        ("seek(7) (the offset of #8)", read_from(7)),
        ("offsets_for_times(the second before #11), then seek",
         kafka_log.replay_from(topic, int(moment.timestamp() * 1000), timeout_s=timeout_s,
                               settings=run.settings)),
        ("a new group, auto_offset_reset='latest'; #13 sent after it joined",
         kafka_log.join_then_produce(topic, run.group("starts-latest"), "latest",
                                     [Message.now("#13")], timeout_s=timeout_s,
                                     settings=run.settings)),
    ]
    return [{"Kafka consumer": how, "got": shown(got), "messages": len(got)}
            for how, got in reads]


def side_by_side(stream_rows: list[dict[str, Any]], kafka_rows: list[dict[str, Any]]
                 ) -> list[dict[str, Any]]:
    """One row per starting point: the stream's ``x-stream-offset`` and what it got,
    next to the Kafka consumer's way there and what it got."""
    return [{"start": s["x-stream-offset"], "stream got": s["got"],
             "Kafka: how": k["Kafka consumer"], "Kafka got": k["got"]}
            for s, k in zip(stream_rows, kafka_rows, strict=True)]
