"""A broker outage while the API runs: fast 503s naming the address, the other broker
unaffected, /health telling which is down, and recovery without restarting the API
(sends succeed again, background consumers resume by themselves)."""

import time

import pytest
from fastapi.testclient import TestClient

from queue_exp import brokers
from queue_exp.api import create_app
from queue_exp.config import get_settings
from queue_exp.course import notebook
from queue_exp.waiting import wait_until
from tests.conftest import SEED_BODY

pytestmark = pytest.mark.slow
OTHER = {"kafka": "rabbitmq", "rabbitmq": "kafka"}


def send(client, broker, text):
    return client.post(f"/{broker}/send", json={**SEED_BODY, "message": text})


@pytest.mark.parametrize("broker", ["kafka", "rabbitmq"])
def test_outage_and_recovery(private_brokers, namespace, broker):
    settings = get_settings().replace(namespace=namespace)
    address = (settings.kafka_bootstrap_servers if broker == "kafka"
               else settings.rabbitmq_url_redacted.split("@")[1].split("/")[0])
    with TestClient(create_app(settings)) as client:
        for name in ("kafka", "rabbitmq"):
            assert client.post(f"/{name}/consume").json()["status"] == "started"
            assert send(client, name, "before").status_code == 200
        notebook.wait_for_messages(client, broker, 1, timeout_s=15)

        brokers.down([broker])
        began = time.monotonic()
        reply = send(client, broker, "during")
        took = time.monotonic() - began
        assert reply.status_code == 503, reply.text
        assert took < 5.0, f"503 took {took:.1f} s"
        assert address in reply.json()["detail"] and "make brokers" in reply.json()["detail"]
        # a second request is just as quick: the API does not hang on a dead broker
        began = time.monotonic()
        assert send(client, broker, "during again").status_code == 503
        assert time.monotonic() - began < 5.0
        # the other broker does not notice
        assert send(client, OTHER[broker], "unaffected").status_code == 200
        health = client.get("/health").json()
        assert health["status"] == "degraded"
        assert health[broker]["reachable"] is False
        assert health[OTHER[broker]]["reachable"] is True

        brokers.up([broker])
        began = time.monotonic()
        wait_until(lambda: send(client, broker, "after").status_code == 200, 30, 0.5)
        recovered = time.monotonic() - began
        # the background consumer resumed by itself and gets what was sent after the restart
        wait_until(
            lambda: "after" in [m["message"] for m in
                                client.get(f"/{broker}/messages").json()["messages"]],
            timeout_s=45, interval_s=0.5)
        assert client.get(f"/{broker}/messages").json()["consumer_running"] is True
        print(f"\n{broker}: 503 after {took:.2f} s; sends succeed {recovered:.2f} s after restart")
    notebook.remove_api_resources(settings)


def test_confirmed_messages_survive_a_broker_restart(private_brokers, namespace):
    """What the API acknowledged is on disk: after restarting both brokers, a plain
    client still reads every message from the durable queue and from the topic."""
    from queue_exp.clients import kafka
    from queue_exp.clients import rabbitmq

    settings = get_settings().replace(namespace=namespace)
    texts = [f"durable-{i}" for i in range(20)]
    with TestClient(create_app(settings)) as client:
        for broker in ("kafka", "rabbitmq"):
            for text in texts:
                assert send(client, broker, text).status_code == 200
        producer = client.app.state.kafka.producer()
        # replies only after every in-sync replica has the record, and retries never duplicate
        assert producer.config["acks"] in (-1, "all")
        assert producer.config["enable_idempotence"] is True

    brokers.restart("rabbitmq")
    brokers.restart("kafka")
    settings = get_settings().replace(namespace=namespace)  # same ports, re-read anyway
    # read exactly as many as were sent (a duplicate would push out one of them
    # and fail the comparison), so the reads end as soon as all are there
    from_queue = rabbitmq.consume(settings.rabbitmq_queue, max_messages=len(texts),
                                       timeout_s=10, settings=settings)
    from_topic = kafka.consume(settings.kafka_topic, max_messages=len(texts),
                                      timeout_s=15, settings=settings)
    assert sorted(m["message"] for m in from_queue) == sorted(texts)
    assert sorted(m["message"] for m in from_topic) == sorted(texts)
    notebook.remove_api_resources(settings)
