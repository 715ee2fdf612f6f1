"""The API through FastAPI's TestClient (lifespan running) against the real brokers."""

import time

import pytest
from fastapi.testclient import TestClient

from queue_exp.api import create_app
from queue_exp.clients import kafka_admin
from queue_exp.clients import rabbitmq
from queue_exp.course import notebook
from queue_exp.waiting import wait_until
from tests.conftest import SEED_BODY

BROKERS = ("kafka", "rabbitmq")


def wait_for_messages(client, broker, count, timeout_s=15):
    return notebook.wait_for_messages(client, broker, count, timeout_s)


@pytest.mark.parametrize("broker", BROKERS)
def test_seed_walkthrough_round_trips(client, settings, broker):
    body = {**SEED_BODY, "message": f"Hello {broker}!"}
    sent = client.post(f"/{broker}/send", json=body)
    assert sent.status_code == 200, sent.text
    reply = sent.json()
    if broker == "kafka":
        assert reply["topic"] == settings.kafka_topic
        assert reply["offset"] == 0 and reply["partition"] in (0, 1, 2)
    else:
        assert reply["queue"] == reply["routing_key"] == settings.rabbitmq_queue
        assert reply["exchange"] == ""
    assert client.post(f"/{broker}/consume").json()["status"] == "started"
    [got] = wait_for_messages(client, broker, 1)
    assert {k: got[k] for k in body} == body


@pytest.mark.parametrize("broker", BROKERS)
def consumers_on_the_broker(broker, settings):
    """How many consumers the broker itself sees: members of the API's Kafka group,
    or consumers of the API's RabbitMQ queue (a passive declare reports them)."""
    if broker == "kafka":
        return len(kafka_admin.group_members(settings.kafka_group, settings))
    with rabbitmq.open_channel(settings, confirm=False) as channel:
        return channel.queue_declare(settings.rabbitmq_queue, passive=True).method.consumer_count


@pytest.mark.parametrize("broker", BROKERS)
def test_second_consume_does_not_start_a_second_consumer(client, settings, broker):
    assert client.post(f"/{broker}/consume").json()["status"] == "started"
    assert client.post(f"/{broker}/consume").json()["status"] == "already running"
    for i in range(3):
        client.post(f"/{broker}/send", json={**SEED_BODY, "message": f"m{i}"})
    assert len(wait_for_messages(client, broker, 3)) == 3
    # a second consumer would share the work, not duplicate it: ask the broker
    assert consumers_on_the_broker(broker, settings) == 1


def test_kafka_key_picks_the_partition(client):
    partitions = {client.post("/kafka/send", json={**SEED_BODY, "key": "user-1"}).json()[
        "partition"] for _ in range(5)}
    assert len(partitions) == 1


@pytest.mark.parametrize("broker", BROKERS)
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"timestamp": "2023-01-01T12:00:00", "source": "x"}, "message"),
        ({**SEED_BODY, "timestamp": "not a time"}, "timestamp"),
        ({**SEED_BODY, "source": 7}, "source"),
        ({**SEED_BODY, "extra": 1}, "extra"),
    ],
)
def test_invalid_body_is_a_422_naming_the_field(client, broker, body, field):
    reply = client.post(f"/{broker}/send", json=body)
    assert reply.status_code == 422
    assert field in [str(part) for error in reply.json()["detail"] for part in error["loc"]]


@pytest.mark.parametrize("broker", BROKERS)
def test_malformed_json_is_a_422_and_nothing_is_sent(client, broker):
    reply = client.post(f"/{broker}/send", content=b'{"message": "x",',
                        headers={"content-type": "application/json"})
    assert reply.status_code == 422
    client.post(f"/{broker}/consume")
    client.post(f"/{broker}/send", json={**SEED_BODY, "message": "marker"})
    got = wait_for_messages(client, broker, 1)
    assert [m["message"] for m in got] == ["marker"]


def test_store_is_bounded(settings):
    small = settings.replace(max_stored_messages=3)
    with TestClient(create_app(small)) as client:
        client.post("/rabbitmq/consume")
        for i in range(5):
            assert client.post("/rabbitmq/send", json={**SEED_BODY, "message": f"m{i}"}).is_success
        wait_until(lambda: client.get("/rabbitmq/messages").json()["received"] == 5, 15)
        reply = client.get("/rabbitmq/messages").json()
    notebook.remove_api_resources(small)
    assert reply["capacity"] == 3
    assert [m["message"] for m in reply["messages"]] == ["m2", "m3", "m4"]


def test_health_reports_both_brokers_redacted(client, settings):
    health = client.get("/health").json()
    assert health["status"] == "ok"
    assert health["kafka"]["reachable"] and health["rabbitmq"]["reachable"]
    assert health["kafka"]["address"] == settings.kafka_bootstrap_servers
    assert ":***@" in health["rabbitmq"]["address"]
    assert "guest:guest" not in str(health)


@pytest.mark.parametrize("broker", BROKERS)
def test_an_unreachable_broker_is_a_fast_503_and_the_other_keeps_working(
        settings, dead_address, broker):
    host, port = dead_address
    other = "rabbitmq" if broker == "kafka" else "kafka"
    broken = (settings.replace(kafka_bootstrap_servers=f"{host}:{port}") if broker == "kafka"
              else settings.replace(rabbitmq_url=f"amqp://guest:s3cret@{host}:{port}/%2F"))
    with TestClient(create_app(broken)) as client:
        began = time.monotonic()
        reply = client.post(f"/{broker}/send", json=SEED_BODY)
        assert reply.status_code == 503 and time.monotonic() - began < 10
        assert f"{host}:{port}" in reply.json()["detail"]
        assert "make brokers" in reply.json()["detail"]
        assert "s3cret" not in reply.text
        assert client.post(f"/{broker}/consume").status_code == 503
        assert client.post(f"/{other}/send", json=SEED_BODY).status_code == 200
        health = client.get("/health").json()
        assert health["status"] == "degraded"
        assert health[broker]["reachable"] is False
        assert "make brokers" in health[broker]["how_to_start"]
        assert health[other]["reachable"] is True
    notebook.remove_api_resources(settings)


def test_rabbitmq_send_goes_to_the_first_node_that_answers(settings, dead_address):
    """Given several nodes (RABBITMQ_URLS) the publisher and the consumer skip one that
    is down; the API's queue is then a quorum queue (replicated on a real cluster)."""
    host, port = dead_address
    dead = f"amqp://guest:guest@{host}:{port}/%2F"
    nodes = settings.replace(rabbitmq_urls=f"{dead},{settings.rabbitmq_url}", rabbitmq_url=dead)
    with TestClient(create_app(nodes)) as client:
        assert client.post("/rabbitmq/consume").json()["status"] == "started"
        reply = client.post("/rabbitmq/send", json={**SEED_BODY, "message": "via node 2"})
        assert reply.status_code == 200, reply.text
        got = notebook.wait_for_messages(client, "rabbitmq", 1)
        assert [m["message"] for m in got] == ["via node 2"]
    with rabbitmq.open_channel(settings, confirm=False) as channel:
        with pytest.raises(Exception, match="PRECONDITION_FAILED"):
            # declared as a quorum queue: a classic declaration of it is refused
            channel.queue_declare(settings.rabbitmq_queue, durable=True)
    notebook.remove_api_resources(settings)
