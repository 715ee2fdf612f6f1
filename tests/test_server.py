"""start_api(): the API inside this process, as a notebook runs it."""

import threading

import httpx

from queue_exp.course import notebook
from queue_exp.server import running_api
from queue_exp.server import start_api
from queue_exp.server import stop_api
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
        assert "queue_exp-api-rabbitmq-consumer" in api_threads()
        settings = api.settings
    finally:
        api.stop()
    assert not api.running and running_api() is None
    assert api_threads() == before
    notebook.remove_api_resources(settings)


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


def test_connections_to_the_api_have_nagle_off():
    # With Nagle on, each request after the first on a keep-alive connection
    # waits ~40 ms for the client's delayed ACK: a notebook's loop of 100 sends
    # would take 4 s instead of 0.1 s. asyncio turns Nagle off only on sockets
    # created as TCP explicitly, so this checks the server side of a live
    # connection.
    import socket

    from fastapi import FastAPI

    app = FastAPI()
    app.get("/ping")(lambda: {"pong": True})
    api = start_api(app=app)
    try:
        with httpx.Client(base_url=api.base_url, timeout=10) as client:
            assert client.get("/ping").json() == {"pong": True}
            connections = list(api._server.server_state.connections)
            assert connections, "the server reports no open connection"
            for protocol in connections:
                sock = protocol.transport.get_extra_info("socket")
                assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        api.stop()
