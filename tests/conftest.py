"""Fixtures: unique names per test, an app on its own namespace, a dead broker address."""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest
from fastapi.testclient import TestClient

from queue_exp import procs, teaching
from queue_exp.api import create_app
from queue_exp.config import Settings, get_settings


@pytest.fixture
def namespace() -> str:
    return f"test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def settings(namespace: str) -> Settings:
    """Settings on the session's real brokers, with a namespace no other test uses."""
    return replace(get_settings(), namespace=namespace)


@pytest.fixture
def client(settings: Settings):
    """The API (lifespan running) on its own namespace; its topic, group and queue
    are deleted afterwards."""
    with TestClient(create_app(settings)) as test_client:
        yield test_client
    teaching.remove_api_resources(settings)


@pytest.fixture
def dead_address() -> tuple[str, int]:
    """A loopback port nothing listens on."""
    return "127.0.0.1", procs.free_port()


SEED_BODY = {"message": "Hello Kafka!", "timestamp": "2023-01-01T12:00:00", "source": "test_client"}
