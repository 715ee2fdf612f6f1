"""The consumer threads every part of the package shares: they start, report a
failure instead of hanging, stop within about a poll, follow a group's
assignment, and (for the API) reconnect after a failed session."""

import threading
import time

import pytest

from queue_exp.clients import kafka
from queue_exp.clients import kafka_admin
from queue_exp.clients import rabbitmq
from queue_exp.clients.consumers import ConsumerThread
from queue_exp.clients.consumers import KafkaConsumerThread
from queue_exp.clients.consumers import RabbitConsumerThread
from queue_exp.clients.consumers import start_in_order
from queue_exp.clients.consumers import stop_all
from queue_exp.clients.consumers import wait_settled
from queue_exp.messages import Message
from queue_exp.waiting import wait_until


class FlakySession(ConsumerThread):
    """Fails its first session, then polls until stopped (no broker needed)."""

    def __init__(self, reconnect):
        super().__init__("flaky", reconnect=reconnect)
        self.sessions = 0

    def _session(self):
        self.sessions += 1
        if self.sessions == 1:
            raise ConnectionError("broker down")
        self.ready.set()
        while not self.stopping:
            time.sleep(self.poll_s)


def test_a_reconnecting_thread_retries_after_a_failure_and_stops_cleanly():
    worker = FlakySession(reconnect=True)
    assert worker.start() is True
    assert worker.start() is False  # a second start does not start a second thread
    worker.wait_ready(5)
    assert worker.sessions == 2 and worker.error == "ConnectionError: broker down"
    began = time.monotonic()
    worker.stop(timeout_s=5)
    assert time.monotonic() - began < 1.0
    assert not worker.running
    assert "queue_exp-flaky" not in {t.name for t in threading.enumerate()}


def test_without_reconnect_a_failure_ends_the_thread_and_is_reported():
    worker = FlakySession(reconnect=False)
    with pytest.raises(RuntimeError, match="flaky could not start consuming: ConnectionError"):
        start_in_order([worker], timeout_s=5)
    assert worker.sessions == 1 and not worker.running


def test_a_consumer_of_a_missing_queue_fails_fast_with_the_brokers_reason(settings):
    worker = RabbitConsumerThread(settings.name("no-such-queue"), lambda *a: None,
                                  name="lost", settings=settings)
    began = time.monotonic()
    with pytest.raises(RuntimeError, match="lost could not start consuming: .*NOT_FOUND"):
        start_in_order([worker], timeout_s=10)
    assert time.monotonic() - began < 5


def test_rabbitmq_workers_started_in_order_get_round_robin_and_stop_within_a_second(settings):
    queue = settings.name("round-robin")
    with rabbitmq.open_channel(settings) as channel:
        rabbitmq.declare_queue(channel, queue)
    got = []

    def on_message(worker, channel, method, _props, body):
        got.append((worker.name, rabbitmq.delivery_to_dict(method, body, queue)["message"]))
        channel.basic_ack(method.delivery_tag)

    # no prefetch limit: both always have room, so the broker strictly alternates
    # (with prefetch=1, a worker that acked fast may get two in a row)
    workers = [RabbitConsumerThread(queue, on_message, name=f"w{i}", settings=settings)
               for i in (1, 2)]
    try:
        start_in_order(workers)
        with rabbitmq.open_channel(settings) as channel:
            for i in range(4):
                rabbitmq.publish(channel, Message.now(f"m{i}"), queue)
        wait_until(lambda: len(got) == 4, 10)
    finally:
        began = time.monotonic()
        stop_all(workers)
        stopped_in = time.monotonic() - began
        rabbitmq.delete_queues([queue], settings=settings)
    assert sorted(got) == [("w1", "m0"), ("w1", "m2"), ("w2", "m1"), ("w2", "m3")]
    assert stopped_in < 1.0
    assert not any(w.running for w in workers)


def test_kafka_group_members_follow_the_assignment_and_leave_within_a_second(settings):
    topic = settings.name("assign")
    kafka_admin.create_topic(topic, partitions=3, settings=settings)
    group = settings.name("assign-group")
    seen = []
    members = [KafkaConsumerThread([topic], lambda c, batch: seen.extend(batch.values()),
                                   group_id=group, name=f"m{i}", settings=settings)
               for i in (1, 2)]
    try:
        since = time.monotonic()
        for member in members:
            member.start()
        wait_settled(members, [0, 1, 2], since, 20)
        assert sorted(len(m.partitions) for m in members) == [1, 2]
        since = time.monotonic()
        began = time.monotonic()
        members[0].stop()
        assert time.monotonic() - began < 1.0
        wait_settled(members, [0, 1, 2], since, 20)  # the other one takes all three
        assert members[1].partitions == [0, 1, 2]
    finally:
        stop_all(members)
        kafka_admin.delete_groups([group], settings=settings)
        kafka_admin.delete_topics([topic], settings=settings)


def test_a_kafka_reader_without_a_group_starts_at_the_end(settings):
    topic = settings.name("from-end")
    kafka_admin.create_topic(topic, partitions=2, settings=settings)
    producer = kafka.make_producer(settings)
    got = []
    reader = KafkaConsumerThread([topic], lambda c, batch: got.extend(
        kafka.record_to_dict(r)["message"] for records in batch.values() for r in records),
        start_at="end", settings=settings)
    try:
        kafka.send(producer, topic, Message.now("before"))
        start_in_order([reader])
        assert reader.partitions == [0, 1]
        kafka.send(producer, topic, Message.now("after"))
        wait_until(lambda: got, 10)
    finally:
        stop_all([reader])
        producer.close(timeout=5)
        kafka_admin.delete_topics([topic], settings=settings)
    assert got == ["after"]
