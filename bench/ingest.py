"""Consumer ingest: the API's background consumers against bare client loops,
reading the same messages: messages per second from the first arrival to the
last (fetch, parse, hand over, ack). Connecting and joining the group are the
same code on both sides and left out: a Kafka group join takes anywhere from
0.1 to 3 s here, which would otherwise be most of the difference between runs."""

from __future__ import annotations

import threading
import time
import uuid

from queue_exp.api.consumers import KafkaApiConsumer
from queue_exp.api.consumers import MessageStore
from queue_exp.api.consumers import RabbitApiConsumer
from queue_exp.clients import kafka
from queue_exp.clients import kafka_admin
from queue_exp.clients import rabbitmq
from queue_exp.config import Settings
from queue_exp.messages import Message


class Arrivals:
    """When the first messages arrived (and how many), and when the ``expected``-th."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.seen = 0
        self.first: tuple[float, int] | None = None
        self.last: float | None = None
        self.complete = threading.Event()

    def arrived(self, how_many: int) -> None:
        self.seen += how_many
        now = time.perf_counter()
        if self.first is None:
            self.first = (now, self.seen)
        if self.seen >= self.expected and self.last is None:
            self.last = now
            self.complete.set()

    def rate(self) -> float:
        if self.first is None or self.last is None:
            raise RuntimeError(f"only {self.seen} of {self.expected} messages arrived in time")
        began, counted = self.first
        return (self.seen - counted) / (self.last - began)


class TimedStore(MessageStore):
    """The API's store (same capacity: it keeps the newest ``max_stored_messages``
    and counts the rest), noting arrivals."""

    def __init__(self, expected: int, settings: Settings) -> None:
        super().__init__(capacity=settings.max_stored_messages)
        self.arrivals = Arrivals(expected)

    def extend(self, items) -> None:
        items = list(items)
        super().extend(items)
        self.arrivals.arrived(len(items))


def fill_kafka(topic: str, count: int, settings: Settings) -> None:
    kafka_admin.create_topic(topic, partitions=3, settings=settings)
    producer = kafka.make_producer(settings, linger_ms=20)
    message = Message.now("ingest benchmark", source="bench")
    for _ in range(count):
        kafka.submit(producer, topic, message)
    producer.flush(timeout=120)
    producer.close(timeout=10)


def kafka_raw(topic: str, count: int, settings: Settings, timeout_s: float) -> float:
    """A bare kafka-python poll loop that only counts records."""
    arrivals = Arrivals(count)
    consumer = kafka.make_consumer(topic, group_id=f"bench-raw-{uuid.uuid4().hex[:8]}",
                                          settings=settings)
    deadline = time.monotonic() + timeout_s
    try:
        while not arrivals.complete.is_set() and time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=500)
            if batch:
                arrivals.arrived(sum(len(records) for records in batch.values()))
    finally:
        consumer.close()
    return arrivals.rate()


def kafka_api(topic: str, count: int, settings: Settings, timeout_s: float) -> float:
    """The API's background consumer (decode, annotate, store each record)."""
    store = TimedStore(count, settings)
    worker = KafkaApiConsumer(topic, f"bench-api-{uuid.uuid4().hex[:8]}", store, settings)
    return _run_api_consumer(worker, store, timeout_s)


def fill_rabbit(queues: list[str], count: int, settings: Settings, timeout_s: float) -> None:
    """Publish ``count`` messages to each queue (unconfirmed, for speed), then wait
    until the broker reports them all enqueued."""
    connection = rabbitmq.connect(settings)
    try:
        channel = connection.channel()
        message = Message.now("ingest benchmark", source="bench")
        for name in queues:
            rabbitmq.declare_queue(channel, name)
            for _ in range(count):
                rabbitmq.publish(channel, message, name)
        deadline = time.monotonic() + timeout_s
        for name in queues:
            while channel.queue_declare(name, passive=True).method.message_count < count:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not fill within {timeout_s} s")
                connection.sleep(0.05)
    finally:
        connection.close()


def rabbit_raw(queue: str, count: int, settings: Settings, timeout_s: float) -> float:
    """A bare pika consumer written as a careful one would be: a prefetch window of
    100 (the API consumer's) and one ``basic_ack(multiple=True)`` for everything
    that arrived in each slice of I/O, counting only (no decoding, no store)."""
    arrivals = Arrivals(count)
    connection = rabbitmq.connect(settings)
    try:
        channel = connection.channel()
        channel.basic_qos(prefetch_count=100)
        last = {"tag": 0, "unacked": 0}

        def on_message(_ch, method, _props, _body):
            last["tag"] = method.delivery_tag
            last["unacked"] += 1

        channel.basic_consume(queue, on_message)
        deadline = time.monotonic() + timeout_s
        while not arrivals.complete.is_set() and time.monotonic() < deadline:
            connection.process_data_events(time_limit=0.2)
            if last["unacked"]:
                channel.basic_ack(last["tag"], multiple=True)
                arrivals.arrived(last["unacked"])
                last["unacked"] = 0
    finally:
        connection.close()
    return arrivals.rate()


def rabbit_api(queue: str, count: int, settings: Settings, timeout_s: float) -> float:
    store = TimedStore(count, settings)
    worker = RabbitApiConsumer(queue, store, settings)
    return _run_api_consumer(worker, store, timeout_s)


def _run_api_consumer(worker, store: TimedStore, timeout_s: float) -> float:
    worker.start()
    try:
        store.arrivals.complete.wait(timeout_s)
    finally:
        worker.stop()
    return store.arrivals.rate()
