"""rabbit_client against the real RabbitMQ broker."""

import uuid

import pytest
from pika.exceptions import UnroutableError

from queue_exp.clients import rabbitmq
from queue_exp.errors import BrokerUnavailable
from queue_exp.messages import Message


@pytest.fixture
def channel():
    connection = rabbitmq.connect()
    ch = connection.channel()
    ch.confirm_delivery()
    yield ch
    connection.close()


@pytest.fixture
def queue_name(channel):
    name = f"test-{uuid.uuid4().hex[:10]}"
    rabbitmq.declare_queue(channel, name)
    yield name
    rabbitmq.delete_queues([name])


def test_round_trip_of_the_seed_payload(channel, queue_name):
    rabbitmq.publish(channel, Message.model_validate(
        {"message": "Hello RabbitMQ!", "timestamp": "2023-01-01T12:00:00",
         "source": "test_client"}), queue_name)
    [got] = rabbitmq.consume(queue_name, max_messages=5, timeout_s=3)
    assert (got["message"], got["source"], got["timestamp"]) == (
        "Hello RabbitMQ!", "test_client", "2023-01-01T12:00:00")
    assert got["queue"] == queue_name and got["redelivered"] is False


def test_consumed_messages_are_gone(channel, queue_name):
    for i in range(5):
        rabbitmq.publish(channel, Message.now(f"m{i}"), queue_name)
    assert [m["message"] for m in rabbitmq.consume(queue_name, max_messages=5)] == [
        f"m{i}" for i in range(5)]
    assert rabbitmq.consume(queue_name, max_messages=5, timeout_s=1) == []


def test_consume_leaves_what_it_did_not_take(channel, queue_name):
    for i in range(4):
        rabbitmq.publish(channel, Message.now(f"m{i}"), queue_name)
    assert len(rabbitmq.consume(queue_name, max_messages=1)) == 1
    assert [m["message"] for m in rabbitmq.consume(queue_name, max_messages=10,
                                                       timeout_s=2)] == ["m1", "m2", "m3"]


def test_mandatory_publish_to_nowhere_is_refused(channel):
    with pytest.raises(UnroutableError):
        rabbitmq.publish(channel, Message.now("lost?"), f"no-such-{uuid.uuid4().hex}",
                              mandatory=True)


def test_unreachable_broker_raises_a_helpful_error_without_the_password(settings, dead_address):
    host, port = dead_address
    dead = settings.replace(rabbitmq_url=f"amqp://guest:s3cret@{host}:{port}/%2F",
                   broker_timeout_ms=1000)
    with pytest.raises(BrokerUnavailable) as info:
        rabbitmq.connect(dead)
    text = str(info.value)
    assert f"{host}:{port}" in text and "make brokers" in text and "s3cret" not in text
    assert rabbitmq.ping(dead)["reachable"] is False


def test_several_nodes_connect_to_the_first_that_answers(settings, dead_address):
    host, port = dead_address
    dead = f"amqp://guest:guest@{host}:{port}/%2F"
    cluster = settings.replace(rabbitmq_urls=f"{dead},{settings.rabbitmq_url}",
                               rabbitmq_url=dead, broker_timeout_ms=1000)
    connection = rabbitmq.connect(cluster)
    try:
        assert connection.is_open
    finally:
        connection.close()
    none_up = settings.replace(rabbitmq_urls=f"{dead},{dead}", rabbitmq_url=dead,
                               broker_timeout_ms=1000)
    with pytest.raises(BrokerUnavailable):
        rabbitmq.connect(none_up)
