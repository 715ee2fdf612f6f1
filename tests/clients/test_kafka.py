"""kafka_client against the real Kafka broker."""

import time
import uuid

import pytest

from queue_exp.clients import kafka
from queue_exp.clients import kafka_admin
from queue_exp.errors import BrokerUnavailable
from queue_exp.messages import Message


@pytest.fixture
def topic():
    name = f"test-{uuid.uuid4().hex[:10]}"
    kafka_admin.create_topic(name, partitions=3)
    yield name
    kafka_admin.delete_topics([name])


def test_create_topic_is_idempotent(topic):
    assert kafka_admin.create_topic(topic, partitions=3) is False


def test_round_trip_of_the_seed_payload(topic):
    producer = kafka.make_producer()
    try:
        sent = kafka.send(producer, topic, Message.model_validate(
            {"message": "Hello Kafka!", "timestamp": "2023-01-01T12:00:00",
             "source": "test_client"}))
    finally:
        producer.close(timeout=5)
    assert sent["topic"] == topic and sent["offset"] == 0
    [got] = kafka.consume(topic, max_messages=1, timeout_s=10)
    assert (got["message"], got["source"], got["timestamp"]) == (
        "Hello Kafka!", "test_client", "2023-01-01T12:00:00")
    assert (got["partition"], got["offset"]) == (sent["partition"], 0)


def test_same_key_same_partition_and_order_kept(topic):
    producer = kafka.make_producer()
    try:
        sent = [kafka.send(producer, topic, Message.now(f"m{i}", key=f"k{i % 2}"))
                for i in range(6)]
    finally:
        producer.close(timeout=5)
    by_key = {}
    for i, meta in enumerate(sent):
        by_key.setdefault(f"k{i % 2}", set()).add(meta["partition"])
    assert all(len(parts) == 1 for parts in by_key.values())
    got = kafka.consume(topic, max_messages=6, timeout_s=10)
    for key in ("k0", "k1"):
        texts = [m["message"] for m in got if m["key"] == key]
        assert texts == [f"m{i}" for i in range(6) if f"k{i % 2}" == key]


def test_reading_does_not_remove(topic):
    producer = kafka.make_producer()
    for i in range(3):
        kafka.send(producer, topic, Message.now(f"m{i}"))
    producer.close(timeout=5)
    first = kafka.consume(topic, max_messages=3, timeout_s=10)
    second = kafka.consume(topic, max_messages=3, timeout_s=10)
    assert len(first) == len(second) == 3


def test_group_resumes_from_its_committed_offset(topic):
    group = f"{topic}-group"
    producer = kafka.make_producer()
    for i in range(2):
        kafka.send(producer, topic, Message.now(f"early{i}", key="k"))
    assert len(kafka.consume(topic, group_id=group, max_messages=2, timeout_s=10)) == 2
    kafka.send(producer, topic, Message.now("late", key="k"))
    producer.close(timeout=5)
    later = kafka.consume(topic, group_id=group, max_messages=5, timeout_s=4)
    assert [m["message"] for m in later] == ["late"]
    kafka_admin.delete_groups([group])


def test_consume_is_bounded_by_its_timeout(topic):
    began = time.monotonic()
    assert kafka.consume(topic, max_messages=1, timeout_s=1.5) == []
    assert time.monotonic() - began < 10


def test_unreachable_broker_raises_a_helpful_error(settings, dead_address):

    host, port = dead_address
    dead = settings.replace(kafka_bootstrap_servers=f"{host}:{port}", broker_timeout_ms=1000)
    with pytest.raises(BrokerUnavailable) as info:
        kafka.make_producer(dead)
    assert f"{host}:{port}" in str(info.value) and "make brokers" in str(info.value)
    assert kafka.ping(dead)["reachable"] is False


def test_reading_a_missing_topic_does_not_create_it(settings):
    # With auto-creation allowed, this read would leave behind a one-partition
    # topic that nobody created (and revive topics a notebook just deleted).
    missing = settings.name(f"never-created-{uuid.uuid4().hex[:8]}")
    assert kafka.consume(missing, max_messages=1, timeout_s=1.5, settings=settings) == []
    assert kafka_admin.partitions_of(missing, settings) == []


def test_a_record_sent_by_another_client_shows_its_own_key(topic):
    # a plain KafkaProducer (as the notebooks' first cells use) sends a key but no
    # "key" in its JSON: the key shown is the record's
    producer = kafka.make_producer()
    body = b'{"message": "m", "timestamp": "2024-05-01T12:00:00", "source": "raw"}'
    producer.send(topic, key=b"alice", value=body).get(timeout=10)
    producer.close(timeout=5)
    [record] = kafka.consume(topic, max_messages=1, timeout_s=10)
    assert (record["message"], record["key"]) == ("m", "alice")
