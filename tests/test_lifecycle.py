"""Clean lifecycle: a notebook kernel that starts the API (twice), then restarts, leaves
no consumer connection or group member behind; `queue_exp serve` binds loopback."""

import os
import signal
import subprocess
import sys

import pytest
from jupyter_client.manager import start_new_kernel

from queue_exp.brokers import procs
from queue_exp.clients import kafka_admin
from queue_exp.clients.rabbitmq_management import Management
from queue_exp.course import notebook
from queue_exp.waiting import wait_until

pytestmark = pytest.mark.slow


def rabbit_connections(management: Management, name: str) -> int:
    connections = management._get("/connections") or []
    return sum(1 for c in connections
               if (c.get("client_properties") or {}).get("connection_name") == name)


def group_members(group: str) -> int:
    return len(kafka_admin.group_members(group))


def run(client, code: str) -> None:
    reply = client.execute_interactive(code, timeout=60)
    assert reply["content"]["status"] == "ok", reply["content"]


def test_kernel_restart_leaves_no_consumers_or_connections(namespace, settings):
    group = settings.kafka_group
    manager, client = start_new_kernel(kernel_name="python3")
    try:
        run(client, f"""
from queue_exp.server import start_api
api = start_api(namespace={namespace!r})
assert start_api() is api  # a second start reuses the running server
assert api.post("/kafka/consume").json()["status"] == "started"
assert api.post("/rabbitmq/consume").json()["status"] == "started"
assert api.post("/rabbitmq/send", json={{"message": "x", "timestamp": "2023-01-01T12:00:00",
                                        "source": "t"}}).status_code == 200
""")
        with Management() as management:
            wait_until(lambda: group_members(group) == 1, 20, 0.5)
            wait_until(
                lambda: rabbit_connections(management, f"{namespace}.queue_exp") >= 2, 20, 0.5)
            manager.restart_kernel(now=False)  # as the Kernel menu does: a clean shutdown
            wait_until(
                lambda: rabbit_connections(management, f"{namespace}.queue_exp") == 0, 20, 0.5)
        # within 3 s, i.e. before the 6 s session timeout could expire it: the consumer
        # left the group cleanly (LeaveGroup at shutdown), it was not just abandoned
        wait_until(lambda: group_members(group) == 0, 3, 0.2)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
        notebook.remove_api_resources(settings)


def test_serve_binds_loopback_only():
    port = procs.free_port()
    proc = subprocess.Popen([sys.executable, "-m", "queue_exp", "serve", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        wait_until(lambda: procs.port_open("127.0.0.1", port), 30, 0.2)
        found = procs.listening({port})
        assert found and {address for address, _ in found} <= procs.LOOPBACK, found
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(15)
