"""POST /rabbitmq/send with an exchange and a routing key, and the redelivered flag
in GET /rabbitmq/messages, against the real RabbitMQ."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient

from queue_exp.api import create_app
from queue_exp.clients import rabbitmq
from queue_exp.config import get_settings
from queue_exp.waiting import wait_until

BODY = {"message": "Hello RabbitMQ!", "timestamp": "2023-01-01T12:00:00", "source": "test_client"}


@pytest.fixture
def settings():
    settings = get_settings().replace(namespace=f"test-api-routing-{uuid.uuid4().hex[:8]}")
    yield settings
    rabbitmq.delete_queues([settings.rabbitmq_queue], settings=settings)


@pytest.fixture
def api(settings):
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture
def topic_exchange(settings):
    """A topic exchange with one queue bound to ``kern.*``; yields (exchange, queue)."""
    exchange, queue = settings.name("alerts"), settings.name("kernel-alerts")
    connection = rabbitmq.connect(settings)
    channel = connection.channel()
    rabbitmq.declare_exchange(channel, exchange, "topic")
    rabbitmq.declare_queue(channel, queue)
    rabbitmq.bind_queue(channel, queue, exchange, "kern.*")
    connection.close()
    yield exchange, queue
    rabbitmq.delete_queues([queue], settings=settings)
    rabbitmq.delete_exchanges([exchange], settings=settings)


def test_seed_body_still_goes_to_the_api_queue(api, settings):
    reply = api.post("/rabbitmq/send", json=BODY)

    assert reply.status_code == 200
    assert reply.json() == {
        "status": "sent",
        "exchange": "",
        "routing_key": settings.rabbitmq_queue,
        "queue": settings.rabbitmq_queue,
        "confirmed": True,
    }
    [got] = rabbitmq.consume(settings.rabbitmq_queue, max_messages=1, settings=settings)
    assert got["message"] == "Hello RabbitMQ!"


def test_exchange_and_routing_key_route_the_message(api, settings, topic_exchange):
    exchange, queue = topic_exchange

    reply = api.post(
        "/rabbitmq/send", json={**BODY, "exchange": exchange, "routing_key": "kern.critical"}
    )

    assert reply.status_code == 200
    assert reply.json()["exchange"] == exchange
    assert reply.json()["routing_key"] == "kern.critical"
    [got] = rabbitmq.consume(queue, max_messages=1, timeout_s=3, settings=settings)
    assert (got["exchange"], got["routing_key"]) == (exchange, "kern.critical")
    # the body on the wire is the message alone: the address is not part of it
    assert "error" not in got and got["message"] == "Hello RabbitMQ!"


def test_unroutable_message_is_a_422_naming_exchange_and_key(api, settings, topic_exchange):
    exchange, queue = topic_exchange

    reply = api.post(
        "/rabbitmq/send", json={**BODY, "exchange": exchange, "routing_key": "auth.info"}
    )

    assert reply.status_code == 422
    assert exchange in reply.json()["detail"] and "auth.info" in reply.json()["detail"]
    assert rabbitmq.consume(queue, max_messages=1, timeout_s=0.5, settings=settings) == []


def test_routing_key_naming_no_queue_is_a_422(api):
    reply = api.post("/rabbitmq/send", json={**BODY, "routing_key": f"no-such-{uuid.uuid4()}"})

    assert reply.status_code == 422
    assert "no queue named" in reply.json()["detail"]


def test_unknown_exchange_is_a_404_and_the_next_send_still_works(api, settings):
    missing = settings.name("no-such-exchange")

    reply = api.post("/rabbitmq/send", json={**BODY, "exchange": missing})
    again = api.post("/rabbitmq/send", json=BODY)

    assert reply.status_code == 404
    assert missing in reply.json()["detail"]
    assert again.status_code == 200


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"exchange": "has space"}, "exchange"),
        ({"exchange": "x" * 256}, "exchange"),
        ({"routing_key": "é" * 128}, "routing_key"),  # 256 bytes in UTF-8
        ({"routing_key": 42}, "routing_key"),
    ],
)
def test_invalid_address_is_a_422_naming_the_field(api, extra, field):
    reply = api.post("/rabbitmq/send", json={**BODY, **extra})

    assert reply.status_code == 422
    assert [e["loc"] for e in reply.json()["detail"]] == [["body", field]]


def test_messages_show_which_ones_were_redelivered(api, settings):
    api.post("/rabbitmq/send", json={**BODY, "message": "taken, never acked"})
    # a consumer takes it and disconnects without acking, like a crashed worker
    connection = rabbitmq.connect(settings)
    channel = connection.channel()
    method, _props, _body = channel.basic_get(settings.rabbitmq_queue, auto_ack=False)
    assert method is not None and not method.redelivered
    connection.close()

    assert api.post("/rabbitmq/consume").status_code == 200
    api.post("/rabbitmq/send", json={**BODY, "message": "fresh"})

    def both_received():
        messages = api.get("/rabbitmq/messages").json()["messages"]
        return messages if len(messages) >= 2 else None

    messages = wait_until(both_received, timeout_s=10)

    assert {m["message"]: m["redelivered"] for m in messages} == {
        "taken, never acked": True,
        "fresh": False,
    }
