"""A class shares one broker pair: namespaces keep students apart, and `reset`
deletes exactly what one namespace created."""

import subprocess
import sys
import threading
import uuid

import pytest
from fastapi.testclient import TestClient

from queue_exp import namespaces
from queue_exp.api import create_app
from queue_exp.clients import kafka
from queue_exp.clients import kafka_admin
from queue_exp.clients import rabbitmq
from queue_exp.config import get_settings
from queue_exp.course import notebook
from tests.conftest import SEED_BODY


def student(namespace: str, results: dict, barrier: threading.Barrier) -> None:
    """What one student's notebook does through the API, in their namespace."""
    settings = get_settings().replace(namespace=namespace)
    with TestClient(create_app(settings)) as client:
        barrier.wait(30)  # both students work at the same time
        for broker in ("kafka", "rabbitmq"):
            assert client.post(f"/{broker}/consume").json()["status"] == "started"
            for i in range(5):
                body = {**SEED_BODY, "message": f"{namespace}-{broker}-{i}"}
                assert client.post(f"/{broker}/send", json=body).status_code == 200
        barrier.wait(30)  # everything of both is sent before anyone reads
        results[namespace] = {
            broker: sorted(m["message"] for m in notebook.wait_for_messages(
                client, broker, 5, timeout_s=20))
            for broker in ("kafka", "rabbitmq")
        }
        results[namespace]["owned"] = namespaces.owned(namespace, settings)


@pytest.fixture
def two_namespaces():
    names = [f"ns{uuid.uuid4().hex[:8]}" for _ in range(2)]
    yield names
    for name in names:
        namespaces.reset(name)


def test_two_namespaces_at_once_see_only_their_own(two_namespaces):
    results: dict = {}
    barrier = threading.Barrier(2)
    errors = []

    def run(name):
        try:
            student(name, results, barrier)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=run, args=(n,)) for n in two_namespaces]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    for name in two_namespaces:
        for broker in ("kafka", "rabbitmq"):
            assert results[name][broker] == [f"{name}-{broker}-{i}" for i in range(5)]
        owned = results[name]["owned"]
        assert owned["topics"] == [f"{name}.queue_exp.messages"]
        assert owned["groups"] == [f"{name}.queue_exp.api"]
        assert owned["queues"] == [f"{name}.queue_exp.messages"]


def test_reset_deletes_exactly_the_namespace(two_namespaces):
    mine, other = two_namespaces
    lookalike = f"{mine}x"  # starts like mine, but is another namespace
    created = []
    for namespace in (mine, other, lookalike):
        settings = get_settings().replace(namespace=namespace)
        kafka_admin.create_topic(settings.name("orders"), settings=settings)
        kafka.consume(settings.name("orders"), group_id=settings.name("billing"),
                             max_messages=1, timeout_s=2, settings=settings)
        connection = rabbitmq.connect(settings)
        channel = connection.channel()
        rabbitmq.declare_exchange(channel, settings.name("logs"), "fanout")
        rabbitmq.declare_queue(channel, settings.name("tasks"))
        connection.close()
        created.append(settings)
    before_other = namespaces.owned(other)
    run = subprocess.run([sys.executable, "-m", "queue_exp", "reset", "--namespace", mine],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "deleted 1 topics, 1 groups, 1 queues, 1 exchanges" in run.stdout, run.stdout
    assert namespaces.owned(mine) == {"topics": [], "groups": [], "queues": [], "exchanges": []}
    assert namespaces.owned(other) == before_other
    assert namespaces.owned(lookalike)["topics"] == [f"{lookalike}.orders"]
    namespaces.reset(lookalike)


def test_reset_needs_a_namespace_and_refuses_a_bad_one(monkeypatch):
    monkeypatch.delenv("QUEUE_EXP_NAMESPACE", raising=False)
    cli = [sys.executable, "-m", "queue_exp", "reset"]
    run = subprocess.run(cli, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "--namespace" in run.stderr
    run = subprocess.run([*cli, "--namespace", "alice.smith"], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 1 and "not allowed" in run.stderr
    monkeypatch.setenv("QUEUE_EXP_NAMESPACE", "a b")
    with pytest.raises(ValueError, match="QUEUE_EXP_NAMESPACE=alice"):
        get_settings()
