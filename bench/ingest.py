"""Consumer ingest: the API's background consumers against bare client loops,
reading the same messages: messages per second from the moment the consumer is
started (connect, join, fetch, parse, hand over, ack) until the last one arrived."""

from __future__ import annotations

import threading
import time
import uuid

from queue_exp import kafka_client, rabbit_client
from queue_exp.background import MessageStore
from queue_exp.config import Settings
from queue_exp.messages import Message


class TimedStore(MessageStore):
    """A MessageStore that notes when the first and the ``expected``-th message arrived."""

    def __init__(self, expected: int) -> None:
        super().__init__(capacity=expected)
        self.expected = expected
        self.last: float | None = None
        self.complete = threading.Event()

    def extend(self, items) -> None:
        super().extend(items)
        if self.received >= self.expected and self.last is None:
            self.last = time.perf_counter()
            self.complete.set()


def _rate(count: int, began: float, last: float | None) -> float:
    if last is None:
        raise RuntimeError("not all messages arrived in time")
    return count / (last - began)


def fill_kafka(topic: str, count: int, settings: Settings) -> None:
    kafka_client.create_topic(topic, partitions=3, settings=settings)
    producer = kafka_client.make_producer(settings, linger_ms=20)
    message = Message.now("ingest benchmark", source="bench")
    for _ in range(count):
        kafka_client.submit(producer, topic, message)
    producer.flush(timeout=120)
    producer.close(timeout=10)


def kafka_raw(topic: str, count: int, settings: Settings, timeout_s: float) -> float:
    """A bare kafka-python poll loop that only counts records."""
    began = time.perf_counter()
    consumer = kafka_client.make_consumer(topic, group_id=f"bench-raw-{uuid.uuid4().hex[:8]}",
                                          settings=settings)
    seen, last = 0, None
    deadline = time.monotonic() + timeout_s
    try:
        while seen < count and time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=500)
            seen += sum(len(records) for records in batch.values())
        last = time.perf_counter() if seen >= count else None
    finally:
        consumer.close()
    return _rate(count, began, last)


def kafka_api(topic: str, count: int, settings: Settings, timeout_s: float) -> float:
    """The API's background consumer (decode, annotate, store each record)."""
    store = TimedStore(count)
    worker = kafka_client.BackgroundConsumer(
        topic, f"bench-api-{uuid.uuid4().hex[:8]}", store, settings)
    return _run_api_consumer(worker, store, timeout_s)


def fill_rabbit(queues: list[str], count: int, settings: Settings, timeout_s: float) -> None:
    """Publish ``count`` messages to each queue (unconfirmed, for speed), then wait
    until the broker reports them all enqueued."""
    connection = rabbit_client.connect(settings)
    try:
        channel = connection.channel()
        message = Message.now("ingest benchmark", source="bench")
        for name in queues:
            rabbit_client.declare_queue(channel, name)
            for _ in range(count):
                rabbit_client.publish(channel, message, name)
        deadline = time.monotonic() + timeout_s
        for name in queues:
            while channel.queue_declare(name, passive=True).method.message_count < count:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not fill within {timeout_s} s")
                connection.sleep(0.05)
    finally:
        connection.close()


def rabbit_raw(queue: str, count: int, settings: Settings, timeout_s: float) -> float:
    """A bare pika consumer with the API consumer's prefetch that only counts and
    acks each message, as the RabbitMQ tutorials write it. (The API's consumer
    acks once per batch it has stored, ``multiple=True``: fewer frames, which is
    why it can be faster than this loop.)"""
    began = time.perf_counter()
    connection = rabbit_client.connect(settings)
    seen = [0]
    last = None
    try:
        channel = connection.channel()
        channel.basic_qos(prefetch_count=100)

        def on_message(ch, method, _props, _body):
            seen[0] += 1
            ch.basic_ack(method.delivery_tag)

        channel.basic_consume(queue, on_message)
        deadline = time.monotonic() + timeout_s
        while seen[0] < count and time.monotonic() < deadline:
            connection.process_data_events(time_limit=0.2)
        last = time.perf_counter() if seen[0] >= count else None
    finally:
        connection.close()
    return _rate(count, began, last)


def rabbit_api(queue: str, count: int, settings: Settings, timeout_s: float) -> float:
    store = TimedStore(count)
    worker = rabbit_client.BackgroundConsumer(queue, store, settings)
    return _run_api_consumer(worker, store, timeout_s)


def _run_api_consumer(worker, store: TimedStore, timeout_s: float) -> float:
    began = time.perf_counter()
    worker.start()
    try:
        store.complete.wait(timeout_s)
    finally:
        worker.stop()
    return _rate(store.expected, began, store.last)
