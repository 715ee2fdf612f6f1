"""Fixtures: unique names per test, an app on its own namespace, a dead broker address."""

from __future__ import annotations

import os
import uuid

import pytest
from fastapi.testclient import TestClient

from queue_exp import brokers
from queue_exp.api import create_app
from queue_exp.brokers import procs
from queue_exp.config import Settings
from queue_exp.config import get_settings
from queue_exp.course import notebook


@pytest.fixture
def namespace() -> str:
    return f"test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def settings(namespace: str) -> Settings:
    """Settings on the session's real brokers, with a namespace no other test uses."""
    return get_settings().replace(namespace=namespace)


@pytest.fixture
def client(settings: Settings):
    """The API (lifespan running) on its own namespace; its topic, group and queue
    are deleted afterwards."""
    with TestClient(create_app(settings)) as test_client:
        yield test_client
    notebook.remove_api_resources(settings)


@pytest.fixture
def dead_address() -> tuple[str, int]:
    """A loopback port nothing listens on."""
    return "127.0.0.1", procs.free_port()


SEED_BODY = {"message": "Hello Kafka!", "timestamp": "2023-01-01T12:00:00", "source": "test_client"}


@pytest.fixture(scope="module")
def private_brokers(tmp_path_factory):
    """A second pair of embedded brokers in a private home, for tests that stop and
    restart brokers without disturbing the session's. Yields nothing; while it is
    active QUEUE_EXP_HOME points at the private home."""
    home = tmp_path_factory.mktemp("private-home")
    saved = dict(os.environ)
    private = brokers.private_env(home)  # from the current environment, before clearing it
    os.environ.clear()
    os.environ.update(private)
    try:
        if procs.port_open("localhost", 9092) or procs.port_open("localhost", 5672):
            pytest.skip("a broker runs on a default port; private brokers would reuse it")
        result = brokers.up()
        assert all(entry["started"] for entry in result.values())
        yield result
    finally:
        try:
            brokers.down()
        finally:
            os.environ.clear()
            os.environ.update(saved)
