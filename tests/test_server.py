"""start_api(): the API inside this process, as a notebook runs it."""

import threading

import httpx

from queue_exp import teaching
from queue_exp.server import running_api, start_api, stop_api
from tests.conftest import SEED_BODY


def api_threads():
    return {t.name for t in threading.enumerate() if t.name.startswith("queue_exp")}


def test_start_twice_reuses_the_server_and_stop_leaves_no_threads(namespace):
    before = api_threads()
    api = start_api(namespace=namespace)
    try:
        assert api.base_url.startswith("http://127.0.0.1:")
        assert start_api() is api
        assert running_api() is api
        assert httpx.get(api.url("/health"), timeout=30).json()["status"] == "ok"
        assert api.post("/kafka/consume").json()["status"] == "started"
        assert api.post("/rabbitmq/consume").json()["status"] == "started"
        assert api.post("/rabbitmq/send", json=SEED_BODY).status_code == 200
        assert "queue_exp-rabbitmq-consumer" in api_threads()
        settings = api.settings
    finally:
        api.stop()
    assert not api.running and running_api() is None
    assert api_threads() == before
    teaching.remove_api_resources(settings)


def test_stop_api_is_safe_when_nothing_runs():
    stop_api()
    stop_api()
    assert running_api() is None


def test_a_stopped_server_can_be_started_again(namespace):
    first = start_api(namespace=namespace)
    first.stop()
    second = start_api(namespace=namespace)
    try:
        assert second is not first
        assert second.get("/health").status_code == 200
    finally:
        second.stop()
